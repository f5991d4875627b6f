package emulator

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/youmark/pkcs8"
)

// openKey decrypts an encrypted key block of the emulator's files.
func openKey(t *testing.T, keyPEM []byte, pass string) (crypto.Signer, error) {
	t.Helper()
	b, _ := pem.Decode(keyPEM)
	require.NotNil(t, b)
	if b.Type == "ENCRYPTED PRIVATE KEY" {
		k, err := pkcs8.ParsePKCS8PrivateKey(b.Bytes, []byte(pass))
		if err != nil {
			return nil, err
		}
		return k.(crypto.Signer), nil
	}
	require.Equal(t, "4,ENCRYPTED", b.Headers["Proc-Type"])
	//lint:ignore SA1019 the test reads the legacy form the emulator writes
	der, err := x509.DecryptPEMBlock(b, []byte(pass))
	if err != nil {
		return nil, err
	}
	k, err := parseTraditionalKey(&pem.Block{Type: b.Type, Bytes: der})
	if err != nil {
		return nil, err
	}
	return k.(crypto.Signer), nil
}

func TestAdminAddCertWithKeyPassphrase(t *testing.T) {
	e := newEnv(t)
	send := e.sendJSON
	for _, tc := range []struct{ name, body, label string }{
		{"pkcs8.example.com", `{"name":"pkcs8.example.com","key_type":"ec","key_passphrase":"s3cret pass"}`, "BEGIN ENCRYPTED PRIVATE KEY"},
		{"legacy.example.com", `{"name":"legacy.example.com","key_type":"rsa","key_passphrase":"s3cret pass","key_encryption":"legacy"}`, "Proc-Type: 4,ENCRYPTED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(http.MethodPost, "/_emulator/certs", tc.body)
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			check := func() {
				c, _ := e.s.Get(tc.name)
				leaf, _, keyPEM := splitFile(t, c.File)
				require.Contains(t, string(keyPEM), tc.label)
				require.NotContains(t, string(c.File), "s3cret", "the file never holds the passphrase")
				key, err := openKey(t, keyPEM, "s3cret pass")
				require.NoError(t, err)
				require.True(t, key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey), "the key decrypts to the leaf's")
				_, err = openKey(t, keyPEM, "wrong")
				require.Error(t, err, "a wrong passphrase does not decrypt it")
			}
			check()
			// A rotation keeps the key encrypted, as re-uploading with the
			// same options would.
			require.Equal(t, http.StatusOK, send(http.MethodPost, "/_emulator/rotate?name="+tc.name, "").status)
			check()
		})
	}
	require.Equal(t, http.StatusBadRequest, send(http.MethodPost, "/_emulator/certs", `{"name":"z","key_passphrase":"x","key_encryption":"rot13"}`).status)
}
