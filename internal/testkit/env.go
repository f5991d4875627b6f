package testkit

import (
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// EnvInt returns the whole number in the environment variable name, or def
// when it is unset (a test's seed count, a soak's length).
func EnvInt(t testing.TB, name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	require.NoError(t, err, name)
	return n
}
