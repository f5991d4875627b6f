package certfile

import (
	"crypto/x509"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
)

func names(chain []*x509.Certificate) string {
	var s []string
	for _, c := range chain {
		s = append(s, c.Subject.CommonName+" < "+c.Issuer.CommonName)
	}
	return strings.Join(s, ", ")
}

// TestParseBundleCrossSignedChain: with two candidate issuers for a
// certificate, the chain served is the one that reaches a root the file
// holds, else the longest; what is left out is named in a warning. The
// file's order does not matter.
func TestParseBundleCrossSignedChain(t *testing.T) {
	p := fixture.NewCrossSigned(t)
	cases := []struct {
		name    string
		certs   []*x509.Certificate
		want    []*x509.Certificate
		leftOut string // in the warning
	}{
		{"new root in the file", []*x509.Certificate{p.InterOld, p.InterNew, p.NewRoot},
			[]*x509.Certificate{p.InterNew, p.NewRoot}, "CN=Intermediate issued by CN=Old Root"},
		{"old root in the file", []*x509.Certificate{p.InterNew, p.InterOld, p.OldRoot},
			[]*x509.Certificate{p.InterOld, p.OldRoot}, "CN=Intermediate issued by CN=New Root"},
		{"no root: the longest", []*x509.Certificate{p.InterOld, p.InterNew, p.NewRootByOld},
			[]*x509.Certificate{p.InterNew, p.NewRootByOld}, "CN=Intermediate issued by CN=Old Root"},
		{"both roots: the longest that reaches one", []*x509.Certificate{p.InterNew, p.NewRoot, p.NewRootByOld, p.OldRoot},
			[]*x509.Certificate{p.InterNew, p.NewRootByOld, p.OldRoot}, "CN=New Root issued by CN=New Root"},
		{"a root the path cannot use", []*x509.Certificate{p.InterOld, p.InterNew, p.NewRootByOld, p.NewRoot},
			[]*x509.Certificate{p.InterNew, p.NewRoot}, "2 certificate(s) outside the served chain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			all := append([]*x509.Certificate{p.Leaf}, tc.certs...)
			for seed := range uint64(8) {
				order := append([]*x509.Certificate(nil), all...)
				if seed > 0 {
					r := mrand.New(mrand.NewPCG(seed, 1))
					r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				}
				bn, err := Parse(p.File(t, order...), nil)
				require.NoError(t, err)
				require.True(t, bn.Leaf.Equal(p.Leaf))
				require.Equal(t, names(tc.want), names(bn.Chain), "order %s", names(order))
				fixture.RequireChain(t, tc.want, bn.Chain)
				require.Len(t, bn.LeftOut, len(all)-1-len(tc.want))
				w := strings.Join(bn.Warnings(), "\n")
				require.Contains(t, w, "outside the served chain; they are left out")
				require.Contains(t, w, tc.leftOut)
			}
		})
	}

	// Both paths reach a root and are as long: the file's order decides,
	// the same way every time.
	for _, first := range []*x509.Certificate{p.InterOld, p.InterNew} {
		second := p.InterNew
		if first == p.InterNew {
			second = p.InterOld
		}
		bn, err := Parse(p.File(t, p.Leaf, first, second, p.OldRoot, p.NewRoot), nil)
		require.NoError(t, err)
		require.True(t, bn.Chain[0].Equal(first), "the first candidate in the file")
		require.Len(t, bn.Chain, 2)
	}
}
