package nhncert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// crossSigned is a PKI in which one intermediate key is certified twice,
// once by an old root and once by a new one, and the new root is also
// cross-signed by the old one (as Let's Encrypt's ISRG Root X1 was by DST
// Root CA X3).
type crossSigned struct {
	oldRoot, newRoot *x509.Certificate
	interOld         *x509.Certificate // "Intermediate", issued by the old root
	interNew         *x509.Certificate // "Intermediate", same key, issued by the new root
	newRootByOld     *x509.Certificate // "New Root", issued by the old root
	leaf             *x509.Certificate
	leafKey          crypto.Signer
}

// testCert issues a certificate of cn for pub, valid from..to, signed by
// parentKey as parent (self-signed when parent is nil); a CA when ca, else
// a TLS leaf for cn.
func testCert(tb testing.TB, serial int64, cn string, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer, ca bool, from, to time.Time) *x509.Certificate {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             from,
		NotAfter:              to,
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if !ca {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.DNSNames = []string{cn}
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	require.NoError(tb, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(tb, err)
	return c
}

// testFile is a certificate file: certs in the order given, then key as
// PKCS#8.
func testFile(tb testing.TB, key crypto.Signer, certs ...*x509.Certificate) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(tb, err)
	var parts [][]byte
	for _, c := range certs {
		parts = append(parts, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return joinPEM(append(parts, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))...)
}

func newCrossSigned(t *testing.T) *crossSigned {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	serial := int64(1)
	now := time.Now()
	issue := func(cn string, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer, ca bool) *x509.Certificate {
		serial++
		return testCert(t, serial, cn, pub, parent, parentKey, ca, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	}
	oldKey, newKey, interKey, leafKey := key(), key(), key(), key()
	p := &crossSigned{leafKey: leafKey}
	p.oldRoot = issue("Old Root", oldKey.Public(), nil, oldKey, true)
	p.newRoot = issue("New Root", newKey.Public(), nil, newKey, true)
	p.newRootByOld = issue("New Root", newKey.Public(), p.oldRoot, oldKey, true)
	p.interOld = issue("Intermediate", interKey.Public(), p.oldRoot, oldKey, true)
	p.interNew = issue("Intermediate", interKey.Public(), p.newRoot, newKey, true)
	p.leaf = issue("cross.example.com", leafKey.Public(), p.interNew, interKey, false)
	return p
}

func (p *crossSigned) file(t *testing.T, certs ...*x509.Certificate) []byte {
	return testFile(t, p.leafKey, certs...)
}

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
	p := newCrossSigned(t)
	cases := []struct {
		name    string
		certs   []*x509.Certificate
		want    []*x509.Certificate
		leftOut string // in the warning
	}{
		{"new root in the file", []*x509.Certificate{p.interOld, p.interNew, p.newRoot},
			[]*x509.Certificate{p.interNew, p.newRoot}, "CN=Intermediate issued by CN=Old Root"},
		{"old root in the file", []*x509.Certificate{p.interNew, p.interOld, p.oldRoot},
			[]*x509.Certificate{p.interOld, p.oldRoot}, "CN=Intermediate issued by CN=New Root"},
		{"no root: the longest", []*x509.Certificate{p.interOld, p.interNew, p.newRootByOld},
			[]*x509.Certificate{p.interNew, p.newRootByOld}, "CN=Intermediate issued by CN=Old Root"},
		{"both roots: the longest that reaches one", []*x509.Certificate{p.interNew, p.newRoot, p.newRootByOld, p.oldRoot},
			[]*x509.Certificate{p.interNew, p.newRootByOld, p.oldRoot}, "CN=New Root issued by CN=New Root"},
		{"a root the path cannot use", []*x509.Certificate{p.interOld, p.interNew, p.newRootByOld, p.newRoot},
			[]*x509.Certificate{p.interNew, p.newRoot}, "2 certificate(s) outside the served chain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			all := append([]*x509.Certificate{p.leaf}, tc.certs...)
			for seed := range uint64(8) {
				order := append([]*x509.Certificate(nil), all...)
				if seed > 0 {
					r := mrand.New(mrand.NewPCG(seed, 1))
					r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				}
				bn, err := ParseBundle(p.file(t, order...))
				require.NoError(t, err)
				require.True(t, bn.Leaf.Equal(p.leaf))
				require.Equal(t, names(tc.want), names(bn.Chain), "order %s", names(order))
				requireChain(t, tc.want, bn.Chain)
				require.Len(t, bn.LeftOut, len(all)-1-len(tc.want))
				w := strings.Join(bn.Warnings(), "\n")
				require.Contains(t, w, "outside the served chain; they are left out")
				require.Contains(t, w, tc.leftOut)
			}
		})
	}

	// Both paths reach a root and are as long: the file's order decides,
	// the same way every time.
	for _, first := range []*x509.Certificate{p.interOld, p.interNew} {
		second := p.interNew
		if first == p.interNew {
			second = p.interOld
		}
		bn, err := ParseBundle(p.file(t, p.leaf, first, second, p.oldRoot, p.newRoot))
		require.NoError(t, err)
		require.True(t, bn.Chain[0].Equal(first), "the first candidate in the file")
		require.Len(t, bn.Chain, 2)
	}
}

// TestReadCrossSignedWarns: the read of such a file serves the chain to
// the root the file holds and says, in the response's warnings, what was
// left out.
func TestReadCrossSignedWarns(t *testing.T) {
	p := newCrossSigned(t)
	h := newHarness(t)
	h.configure(nil)
	h.emu.Put(emulator.Certificate{Name: "cross.example.com", File: p.file(t, p.leaf, p.interOld, p.interNew, p.newRoot), ExpirationDate: "2999-01-01"})
	resp := h.read("cross.example.com", nil)
	chain := resp.Data["ca_chain"].([]string)
	require.Len(t, chain, 2)
	require.Equal(t, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.interNew.Raw})), chain[0]+"\n")
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "the file holds 1 certificate(s) outside the served chain; they are left out: CN=Intermediate issued by CN=Old Root")
	_, err := h.request(logical.ReadOperation, "certs/cross.example.com", nil)
	require.NoError(t, err)
}
