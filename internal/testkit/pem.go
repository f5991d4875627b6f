package testkit

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// PEMBlocks splits data into its PEM blocks, in order, and returns what
// follows the last one (text PEM decoding does not recognise).
func PEMBlocks(data []byte) (blocks []*pem.Block, rest []byte) {
	rest = data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return blocks, rest
		}
		blocks = append(blocks, b)
	}
}

// RequirePEMBlocks splits data into PEM blocks and fails unless nothing
// but whitespace follows them and there is at least one.
func RequirePEMBlocks(t testing.TB, data []byte) []*pem.Block {
	t.Helper()
	blocks, rest := PEMBlocks(data)
	require.NotEmpty(t, blocks, "no PEM block in %q", truncate(string(data), 80))
	require.Empty(t, strings.TrimSpace(string(rest)), "bytes after the PEM blocks")
	return blocks
}

// Certificates parses every CERTIFICATE block of data, in file order.
func Certificates(t testing.TB, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	blocks, _ := PEMBlocks(data)
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		out = append(out, c)
	}
	return out
}

// FirstCertificate parses the first CERTIFICATE block of data.
func FirstCertificate(t testing.TB, data []byte) *x509.Certificate {
	t.Helper()
	certs := Certificates(t, data)
	require.NotEmpty(t, certs, "no CERTIFICATE block")
	return certs[0]
}

// PublicKeyMatches reports whether key is the private key of cert.
func PublicKeyMatches(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// RequireKeyMatches fails unless key is the private key of cert.
func RequireKeyMatches(t testing.TB, key crypto.Signer, cert *x509.Certificate) {
	t.Helper()
	require.True(t, PublicKeyMatches(key, cert), "the private key (%T) does not match the certificate %q", key, cert.Subject.CommonName)
}

// RequireKeyPEMMatches fails unless keyPEM (any PEM private key form Go
// reads: PKCS#1, SEC 1, PKCS#8) is the private key of cert.
func RequireKeyPEMMatches(t testing.TB, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	_, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err, "the private key does not match the certificate %q", cert.Subject.CommonName)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
