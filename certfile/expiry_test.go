package certfile

import (
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
)

// TestParseBundlePrefersUnexpiredCandidates: where a file holds an expired
// and an unexpired candidate, the unexpired one is served, whatever the
// file's order: the current copy of an intermediate as issuing_ca, and the
// renewal of a leaf that kept its key as the leaf.
func TestParseBundlePrefersUnexpiredCandidates(t *testing.T) {
	p := fixture.NewExpiringPKI(t)
	for _, tc := range []struct {
		name  string
		certs []*x509.Certificate
	}{
		{"expired intermediate first", []*x509.Certificate{p.LeafValid, p.InterExpired, p.InterValid, p.Root}},
		{"expired intermediate last", []*x509.Certificate{p.LeafValid, p.InterValid, p.InterExpired, p.Root}},
		{"expired leaf first", []*x509.Certificate{p.LeafExpired, p.LeafValid, p.InterExpired, p.InterValid, p.Root}},
		{"expired leaf last", []*x509.Certificate{p.InterValid, p.Root, p.InterExpired, p.LeafValid, p.LeafExpired}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse(p.File(t, tc.certs...), nil)
			require.NoError(t, err)
			require.True(t, b.Leaf.Equal(p.LeafValid), "leaf served: serial %s, not after %s", b.Leaf.SerialNumber, b.Leaf.NotAfter)
			require.Len(t, b.Chain, 2, names(b.Chain))
			require.True(t, b.Chain[0].Equal(p.InterValid), "issuing_ca: not after %s", b.Chain[0].NotAfter)
			require.True(t, b.Chain[1].Equal(p.Root))
		})
	}
	// With only an expired copy of the intermediate, it is still the chain
	// (the best the file has), not a chain cut short.
	b, err := Parse(p.File(t, p.LeafValid, p.InterExpired, p.Root), nil)
	require.NoError(t, err)
	require.Len(t, b.Chain, 2)
	require.True(t, b.Chain[0].Equal(p.InterExpired))
}
