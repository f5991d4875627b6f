package nhncert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/certutil"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// expiringPKI is a root, an intermediate certified twice with one key (an
// old, expired copy and the current one), and a leaf key certified twice
// (an expired leaf and its renewal, which kept the key).
type expiringPKI struct {
	root, interExpired, interValid *x509.Certificate
	leafExpired, leafValid         *x509.Certificate
	leafKey                        crypto.Signer
}

func newExpiringPKI(t *testing.T) *expiringPKI {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	now := time.Now()
	serial := int64(100)
	issue := func(cn string, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer, ca bool, from, to time.Time) *x509.Certificate {
		serial++
		return testCert(t, serial, cn, pub, parent, parentKey, ca, from, to)
	}
	rootKey, interKey, leafKey := key(), key(), key()
	day := 24 * time.Hour
	p := &expiringPKI{leafKey: leafKey}
	p.root = issue("Expiry Root", rootKey.Public(), nil, rootKey, true, now.Add(-400*day), now.Add(3650*day))
	p.interExpired = issue("Expiry Intermediate", interKey.Public(), p.root, rootKey, true, now.Add(-400*day), now.Add(-30*day))
	p.interValid = issue("Expiry Intermediate", interKey.Public(), p.root, rootKey, true, now.Add(-30*day), now.Add(700*day))
	p.leafExpired = issue("expiry.example.com", leafKey.Public(), p.interValid, interKey, false, now.Add(-100*day), now.Add(-day))
	p.leafValid = issue("expiry.example.com", leafKey.Public(), p.interValid, interKey, false, now.Add(-day), now.Add(89*day))
	return p
}

func (p *expiringPKI) file(t *testing.T, certs ...*x509.Certificate) []byte {
	return testFile(t, p.leafKey, certs...)
}

// TestParseBundlePrefersUnexpiredCandidates: where a file holds an expired
// and an unexpired candidate, the unexpired one is served, whatever the
// file's order: the current copy of an intermediate as issuing_ca, and the
// renewal of a leaf that kept its key as the leaf.
func TestParseBundlePrefersUnexpiredCandidates(t *testing.T) {
	p := newExpiringPKI(t)
	for _, tc := range []struct {
		name  string
		certs []*x509.Certificate
	}{
		{"expired intermediate first", []*x509.Certificate{p.leafValid, p.interExpired, p.interValid, p.root}},
		{"expired intermediate last", []*x509.Certificate{p.leafValid, p.interValid, p.interExpired, p.root}},
		{"expired leaf first", []*x509.Certificate{p.leafExpired, p.leafValid, p.interExpired, p.interValid, p.root}},
		{"expired leaf last", []*x509.Certificate{p.interValid, p.root, p.interExpired, p.leafValid, p.leafExpired}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBundle(p.file(t, tc.certs...))
			require.NoError(t, err)
			require.True(t, b.Leaf.Equal(p.leafValid), "leaf served: serial %s, not after %s", b.Leaf.SerialNumber, b.Leaf.NotAfter)
			require.Len(t, b.Chain, 2, names(b.Chain))
			require.True(t, b.Chain[0].Equal(p.interValid), "issuing_ca: not after %s", b.Chain[0].NotAfter)
			require.True(t, b.Chain[1].Equal(p.root))
		})
	}
	// With only an expired copy of the intermediate, it is still the chain
	// (the best the file has), not a chain cut short.
	b, err := ParseBundle(p.file(t, p.leafValid, p.interExpired, p.root))
	require.NoError(t, err)
	require.Len(t, b.Chain, 2)
	require.True(t, b.Chain[0].Equal(p.interExpired))
}

// TestReadServesTheRenewedLeafAndCachesIt: a file holding an expired leaf
// before its renewal serves the renewal, and the copy is fresh: the second
// read does not download again.
func TestReadServesTheRenewedLeafAndCachesIt(t *testing.T) {
	p := newExpiringPKI(t)
	h := newHarness(t)
	h.configure(nil)
	h.emu.Put(emulator.Certificate{Name: "expiry.example.com",
		File:           p.file(t, p.leafExpired, p.leafValid, p.interExpired, p.interValid, p.root),
		ExpirationDate: p.leafValid.NotAfter.UTC().Format("2006-01-02")})
	for range 3 {
		d := h.read("expiry.example.com", nil).Data
		require.Equal(t, p.leafValid.NotAfter.UTC().Format(time.RFC3339), d["not_after"])
		require.Equal(t, certutil.GetHexFormatted(p.leafValid.SerialNumber.Bytes(), ":"), d["serial_number"])
		require.Equal(t, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.interValid.Raw})), d["issuing_ca"].(string)+"\n")
	}
	require.EqualValues(t, 1, h.fileCalls("expiry.example.com"), "a fresh copy is not downloaded again")
}
