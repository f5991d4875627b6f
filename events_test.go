package nhncert

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestEventsUnavailableIsSilent(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	conf := logical.TestBackendConfig()
	conf.StorageView = h.storage
	b, err := Factory(context.Background(), conf) // no EventsSender
	require.NoError(t, err)
	nb := b.(*backend)
	nb.certChanged(context.Background(), certUpdated, "example.com")
}
