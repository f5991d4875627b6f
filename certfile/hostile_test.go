package certfile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
)

// hostileFile is the worst file for the chain search that fits NHN's
// limits: maxFileCertificates certificates, a leaf and CA certificates of
// two names, "A" and "B", that certify each other, each name held by
// `keys` keys (decoys with the same names), every A certified by every B
// and the other way round. From the leaf up every step has `keys` verified
// issuers and the paths alternate A, B, A... through all of them: very
// many paths, each step costing a signature check per candidate unless
// the search remembers them.
func hostileFile(tb testing.TB, keygen func() crypto.Signer, keys int) []byte {
	tb.Helper()
	now := time.Now()
	serial := int64(1000)
	issue := func(cn string, pub crypto.PublicKey, issuerCN string, issuerKey crypto.Signer, ca bool) *x509.Certificate {
		serial++
		parent := &x509.Certificate{Subject: pkix.Name{CommonName: issuerCN}, PublicKey: issuerKey.Public()}
		return fixture.Cert(tb, serial, cn, pub, parent, issuerKey, ca, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	}
	var a, b []crypto.Signer
	for range keys {
		a, b = append(a, keygen()), append(b, keygen())
	}
	leafKey := keygen()
	certs := []*x509.Certificate{issue("hostile.example.com", leafKey.Public(), "A", a[0], false)}
	for _, ka := range a {
		for _, kb := range b {
			if len(certs) < maxFileCertificates {
				certs = append(certs, issue("A", ka.Public(), "B", kb, true))
			}
			if len(certs) < maxFileCertificates {
				certs = append(certs, issue("B", kb.Public(), "A", ka, true))
			}
		}
	}
	return fixture.File(tb, leafKey, certs...)
}

func ecKey(tb testing.TB) func() crypto.Signer {
	return func() crypto.Signer {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(tb, err)
		return k
	}
}

// TestHostileFileBoundedWork: the worst file is answered with at most one
// signature check per pair of its certificates (n², here 32² = 1024), not
// one per candidate per step of the search (tens of thousands before), so
// its cost cannot grow back to tens of seconds. The count is the measure;
// the time bound is only a generous backstop for a loaded machine.
func TestHostileFileBoundedWork(t *testing.T) {
	file := hostileFile(t, ecKey(t), 4)
	before := signatureChecks.Load()
	start := time.Now()
	b, err := Parse(file, nil)
	took := time.Since(start)
	checks := signatureChecks.Load() - before
	t.Logf("hostile file (%d bytes): %d signature checks in %s", len(file), checks, took)
	require.NoError(t, err, "a file of cross-certified CAs is served")
	require.Equal(t, "hostile.example.com", b.Leaf.Subject.CommonName)
	require.NotEmpty(t, b.Chain)
	require.LessOrEqual(t, checks, int64(maxFileCertificates*maxFileCertificates), "signature checks")
	require.Less(t, took, 20*time.Second)
}

// BenchmarkParseHostileFile is TestHostileFileBoundedWork's file with
// RSA-4096 keys (whose checks cost most), for make bench: the target is
// about a second per parse.
func BenchmarkParseHostileFile(b *testing.B) {
	file := hostileFile(b, func() crypto.Signer {
		k, err := rsa.GenerateKey(rand.Reader, 4096)
		require.NoError(b, err)
		return k
	}, 4)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Parse(file, nil); err != nil {
			b.Fatal(err)
		}
	}
}
