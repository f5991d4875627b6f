package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func selfSigned(t *testing.T) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "testkit"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestPEMBlocksAndKeys(t *testing.T) {
	key, cert, certPEM := selfSigned(t)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})

	blocks, rest := PEMBlocks(append(append(append([]byte("text before\n"), certPEM...), keyPEM...), "tail"...))
	require.Len(t, blocks, 2)
	require.Equal(t, []string{"CERTIFICATE", "PRIVATE KEY"}, []string{blocks[0].Type, blocks[1].Type})
	require.Equal(t, "tail", string(rest))
	require.Len(t, RequirePEMBlocks(t, append(certPEM, keyPEM...)), 2)
	require.Equal(t, cert.Raw, FirstCertificate(t, append(keyPEM, certPEM...)).Raw)

	other, _, _ := selfSigned(t)
	require.True(t, PublicKeyMatches(key, cert))
	require.False(t, PublicKeyMatches(other, cert))
	RequireKeyMatches(t, key, cert)
	RequireKeyPEMMatches(t, keyPEM, cert)
}

func TestRecorderKeepsEveryRequest(t *testing.T) {
	r := NewRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, p := range []string{"/a", "/b?x=1"} {
		resp, err := http.Get(r.URL + p)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusTeapot, resp.StatusCode)
	}
	require.Equal(t, []string{"/a", "/b?x=1"}, r.RequestURIs())
	r.Reset()
	require.Empty(t, r.Requests())
}
