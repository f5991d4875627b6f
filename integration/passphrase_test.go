package integration

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// TestPassphraseForAnEncryptedKey runs the operator's story on a real
// Vault with a file audit device: NHN holds two certificates whose keys
// were uploaded with a passphrase (legacy PEM and PKCS#8). A server token,
// which may only read certs/*, is refused with an error naming the path to
// write; a "cert admin" token, which may only use passphrases/*, writes a
// wrong passphrase (refused, saying so) and then the right one (by stdin
// and by HTTP body); the server token then reads the certificate and its
// key matches the leaf. The passphrase appears in no answer, nowhere in
// Vault's log (trace level, plugin lines included) and, in the audit log,
// only HMAC'd.
func TestPassphraseForAnEncryptedKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withVaultArgs("-log-level=trace"))
	v := e.vault
	ctx := ctxT(t)
	auditPath := filepath.Join(e.dir, "audit.log")
	mustCLI(t, v, "audit", "enable", "file", "file_path="+auditPath)

	pass := "itest-PASSPHRASE-" + randomHex(16)
	wrong := "itest-WRONG-PASSPHRASE-" + randomHex(16)
	certs := map[string]emulator.AddCertRequest{
		"encrypted.example.com":       {Name: "encrypted.example.com", KeyType: emulator.RSA, KeyPassphrase: pass, KeyEncryption: string(emulator.KeyLegacy)},
		"encrypted-pkcs8.example.com": {Name: "encrypted-pkcs8.example.com", KeyType: emulator.EC, KeyPassphrase: pass},
	}
	for _, req := range certs {
		_, err := e.emu.admin.AddCert(ctx, req)
		require.NoError(t, err)
	}

	server := tokenWithPolicy(t, v, "nhncert-server", `path "`+mount+`/certs/*" {
  capabilities = ["read"]
}
`, "-no-default-policy")
	admin := tokenWithPolicy(t, v, "nhncert-cert-admin", `path "`+mount+`/passphrases/*" {
  capabilities = ["create", "update", "read", "delete", "list"]
}
path "`+mount+`/passphrases" {
  capabilities = ["list"]
}
`, "-no-default-policy")

	// Everything the users get back.
	var outputs []string
	cli := func(token, stdin string, args ...string) cliResult {
		t.Helper()
		r := v.cli(token, stdin, args...)
		outputs = append(outputs, r.stdout+r.stderr)
		return r
	}
	raw := func(token, method, path string, body any) rawResponse {
		t.Helper()
		r := mustRaw(t, v, token, method, path, nil, body)
		outputs = append(outputs, string(r.body))
		return r
	}

	const name = "encrypted.example.com"
	// Refused, naming the path to write.
	r := cli(server, "", "read", mount+"/certs/"+name)
	require.NotEqual(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stderr, "Code: 502")
	assert.Contains(t, r.stderr, `no passphrase is set for this certificate: write it to "`+mount+`/passphrases/`+name+`"`)
	t.Logf("demo: $ vault read %s/certs/%s\n%s", mount, name, strings.TrimSpace(r.stderr))

	// Each token only where its policy lets it.
	assert.Equal(t, 403, raw(server, "POST", mount+"/passphrases/"+name, map[string]any{"passphrase": wrong}).status, "the server token writes a passphrase")
	assert.Equal(t, 403, raw(admin, "GET", mount+"/certs/"+name, nil).status, "the cert admin token reads a certificate")

	// A wrong passphrase: refused, saying so.
	w := cli(admin, wrong, "write", mount+"/passphrases/"+name, "passphrase=-")
	require.Equal(t, 0, w.code, "%s", w)
	r = cli(server, "", "read", mount+"/certs/"+name)
	require.NotEqual(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stderr, "does not decrypt the private key")

	// The right one, by stdin (the CLI's "-") and by an HTTP body.
	w = cli(admin, pass, "write", mount+"/passphrases/"+name, "passphrase=-")
	require.Equal(t, 0, w.code, "%s", w)
	t.Logf("demo: $ vault write %s/passphrases/%s passphrase=-   (the passphrase on stdin)\n%s", mount, name, strings.TrimSpace(w.stdout+w.stderr))
	hr := raw(admin, "POST", mount+"/passphrases/encrypted-pkcs8.example.com", map[string]any{"passphrase": pass})
	require.Contains(t, []int{200, 204}, hr.status, "%s", hr)

	// The admin sees that one is set, and when, never the passphrase.
	st := raw(admin, "GET", mount+"/passphrases/"+name, nil)
	require.Equal(t, 200, st.status, "%s", st)
	assert.Equal(t, true, st.data()["set"])
	assert.NotEmpty(t, st.data()["updated_at"])
	assert.Len(t, st.data(), 2, "a read answers set and updated_at only: %v", st.data())
	lr := raw(admin, "LIST", mount+"/passphrases", nil)
	require.Equal(t, 200, lr.status, "%s", lr)
	assert.ElementsMatch(t, []any{"encrypted.example.com", "encrypted-pkcs8.example.com"}, lr.data()["keys"])

	// The server reads them: keys that match their leaves.
	for n := range certs {
		for _, q := range []string{"", "?private_key_format=pkcs8"} {
			rr := raw(server, "GET", mount+"/certs/"+n+q, nil)
			require.Equal(t, 200, rr.status, "read %s%s: %s", n, q, rr)
			d := rr.data()
			leaf := parseCertPEM(t, "certificate of "+n, d["certificate"].(string))
			kb, _ := pem.Decode([]byte(d["private_key"].(string)))
			require.NotNil(t, kb, "read %s: no PEM private_key", n)
			assert.Empty(t, kb.Headers, "the key is served decrypted")
			key := parseAnyKey(t, kb)
			assert.True(t, key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey), "read %s%s: the key does not match the leaf", n, q)
		}
	}
	sr := cli(server, "", "read", "-format=json", mount+"/certs/"+name)
	require.Equal(t, 0, sr.code, "%s", sr)
	t.Logf("demo: $ vault read %s/certs/%s   (served; private_key and PEM bodies cut)\n%s", mount, name, shortenRead(t, sr.stdout))
	md := raw(v.rootToken, "GET", mount+"/metadata/"+name, nil)
	require.Equal(t, 200, md.status, "%s", md)
	assert.Equal(t, true, md.data()["private_key_encrypted_upstream"])

	// Nowhere: the answers, Vault's log, the audit log (HMAC'd only).
	for _, s := range []string{pass, wrong} {
		b64 := base64.StdEncoding.EncodeToString([]byte(s))
		for i, o := range outputs {
			assert.False(t, strings.Contains(o, s) || strings.Contains(o, b64), "answer %d holds a passphrase", i)
		}
		logText, err := os.ReadFile(v.logPath)
		require.NoError(t, err)
		assert.False(t, strings.Contains(string(logText), s) || strings.Contains(string(logText), b64), "Vault's log holds a passphrase")
		auditText, err := os.ReadFile(auditPath)
		require.NoError(t, err)
		assert.False(t, strings.Contains(string(auditText), s) || strings.Contains(string(auditText), b64), "the audit log holds a passphrase")
		hr := mustRaw(t, v, v.rootToken, "POST", "sys/audit-hash/file", nil, map[string]any{"input": s})
		h, _ := hr.data()["hash"].(string)
		require.True(t, strings.HasPrefix(h, "hmac-sha256:"), "sys/audit-hash/file: %s", hr)
		assert.True(t, strings.Contains(string(auditText), `"passphrase":"`+h+`"`), "the audit log has no HMAC'd passphrase: the write was not audited as expected")
	}
	logText, err := os.ReadFile(v.logPath)
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(logText), "secrets.vault-plugin-secrets-nhncert"), "Vault's log has no plugin lines: the check saw nothing")
}

func parseAnyKey(t *testing.T, b *pem.Block) crypto.Signer {
	t.Helper()
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	require.NoError(t, err, "the served %s", b.Type)
	return k.(crypto.Signer)
}

var pemBody = regexp.MustCompile(`(-----BEGIN [A-Z ]+-----)(\\n[A-Za-z0-9+/=]+)+(\\n-----END [A-Z ]+-----)`)

// shortenRead is a `vault read -format=json` answer for a transcript: the
// private key out, PEM bodies cut.
func shortenRead(t *testing.T, out string) string {
	t.Helper()
	var s map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &s), out)
	d, _ := s["data"].(map[string]any)
	d["private_key"] = "(not printed)"
	b, err := json.MarshalIndent(s, "", "  ")
	require.NoError(t, err)
	return pemBody.ReplaceAllString(string(b), `$1\n...$3`) + fmt.Sprintf("\n(%d fields)", len(d))
}
