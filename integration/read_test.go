package integration

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRead checks `read nhncert/certs/<name>` through the CLI and HTTP:
// fields, formats, wildcards, unknown and unsafe names.
func TestRead(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault
	ctx := ctxT(t)
	certs := emulatorCerts(t, e)

	t.Run("fields", func(t *testing.T) {
		for _, c := range []struct {
			name, keyType string
			chainLen      int
		}{
			{"example.com", "rsa", 1},     // PKCS#1 key, blocks shuffled
			{"*.example.com", "ec", 1},    // wildcard
			{"api.example.com", "rsa", 2}, // PKCS#8 key, root included
			{"ed25519.example.com", "ed25519", 1},
		} {
			t.Run(c.name, func(t *testing.T) {
				s := readCert(t, v, c.name, nil)
				leaf := checkPEMRead(t, s, c.name, c.keyType, c.chainLen)
				assert.Equal(t, certs[c.name].Serial, serialHex(leaf.SerialNumber), "serial; the emulator serves another")
				assert.Empty(t, s.Warnings, "warnings")
				// The raw answer: no lease, no expiration anywhere.
				r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+url.PathEscape(c.name), nil, nil)
				var body map[string]any
				require.NoError(t, json.Unmarshal(r.body, &body), "GET: %s", r)
				require.Equal(t, 200, r.status, "GET: %s", r)
				lease := fmt.Sprintf("GET answer has a lease: lease_id=%v lease_duration=%v renewable=%v", body["lease_id"], body["lease_duration"], body["renewable"])
				assert.Equal(t, float64(0), body["lease_duration"], lease)
				assert.Equal(t, "", body["lease_id"], lease)
				assert.Equal(t, false, body["renewable"], lease)
			})
		}
		// The root is last when the file has it.
		s := readCert(t, v, "api.example.com", nil)
		chain := strList(t, s.Data, "ca_chain")
		root := parseCertPEM(t, "root", chain[len(chain)-1])
		assert.NoError(t, root.CheckSignatureFrom(root), "api.example.com: the last of ca_chain is not the self-signed root")
		// The key is returned as the file had it.
		for name, typ := range map[string]string{"example.com": "RSA PRIVATE KEY", "api.example.com": "PRIVATE KEY", "*.example.com": "EC PRIVATE KEY"} {
			b, _ := pem.Decode([]byte(str(t, readCert(t, v, name, nil).Data, "private_key")))
			if assert.NotNil(t, b, "%s: no private_key block, want %s as stored", name, typ) {
				assert.Equal(t, typ, b.Type, "%s: private_key block, want %s as stored", name, typ)
			}
		}
	})

	t.Run("cli", func(t *testing.T) {
		out := mustCLI(t, v, "read", mount+"/certs/example.com")
		for _, f := range certFields {
			assert.Contains(t, out, f, "vault read does not show %s", f)
		}
		for _, f := range []string{"lease_id", "lease_duration"} {
			assert.NotContains(t, out, f, "vault read shows %s", f)
		}
		cert := mustCLI(t, v, "read", "-field=certificate", mount+"/certs/example.com")
		key := mustCLI(t, v, "read", "-field=private_key", mount+"/certs/example.com")
		_, err := tls.X509KeyPair([]byte(cert), []byte(key))
		assert.NoError(t, err, "vault read -field=certificate / -field=private_key do not match")
	})

	t.Run("format=der", func(t *testing.T) {
		pemLeaf := parseCertPEM(t, "pem", str(t, readCert(t, v, "example.com", nil).Data, "certificate"))
		d := readCert(t, v, "example.com", map[string][]string{"format": {"der"}}).Data
		leaf := parseCertDER(t, "der certificate", str(t, d, "certificate"))
		assert.True(t, leaf.Equal(pemLeaf), "der certificate is not the pem one")
		issuer := parseCertDER(t, "der issuing_ca", str(t, d, "issuing_ca"))
		assert.NoError(t, leaf.CheckSignatureFrom(issuer), "der issuing_ca did not sign the leaf")
		for i, c := range strList(t, d, "ca_chain") {
			parseCertDER(t, fmt.Sprintf("der ca_chain[%d]", i), c)
		}
		keyDER, err := base64.StdEncoding.DecodeString(str(t, d, "private_key"))
		require.NoError(t, err, "der private_key")
		k, err := x509.ParsePKCS1PrivateKey(keyDER)
		require.NoError(t, err, "der private_key of example.com (stored as PKCS#1)")
		assert.True(t, testkit.PublicKeyMatches(k, leaf), "der private_key does not match the leaf")
		// With pkcs8.
		d = readCert(t, v, "example.com", map[string][]string{"format": {"der"}, "private_key_format": {"pkcs8"}}).Data
		keyDER, _ = base64.StdEncoding.DecodeString(str(t, d, "private_key"))
		_, err = x509.ParsePKCS8PrivateKey(keyDER)
		assert.NoError(t, err, "der+pkcs8 private_key")
	})

	t.Run("format=pem_bundle", func(t *testing.T) {
		d := readCert(t, v, "example.com", map[string][]string{"format": {"pem_bundle"}}).Data
		bundle := str(t, d, "certificate")
		blocks, _ := testkit.PEMBlocks([]byte(bundle))
		var types []string
		for _, b := range blocks {
			types = append(types, b.Type)
		}
		certsIn := testkit.Certificates(t, []byte(bundle))
		require.Equal(t, []string{"RSA PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"}, types, "pem_bundle blocks; want key, leaf, issuer")
		_, err := tls.X509KeyPair([]byte(bundle), []byte(bundle))
		assert.NoError(t, err, "pem_bundle: key and leaf do not match")
		assert.Equal(t, str(t, d, "serial_number"), serialHex(certsIn[0].SerialNumber), "pem_bundle: the first certificate is not the leaf")
		assert.NoError(t, certsIn[0].CheckSignatureFrom(certsIn[1]), "pem_bundle: the second certificate did not sign the leaf")
	})

	t.Run("private_key_format=pkcs8", func(t *testing.T) {
		for _, name := range []string{"example.com", "*.example.com", "ed25519.example.com"} {
			d := readCert(t, v, name, map[string][]string{"private_key_format": {"pkcs8"}}).Data
			b, _ := pem.Decode([]byte(str(t, d, "private_key")))
			require.NotNil(t, b, "%s pkcs8: no PEM block", name)
			require.Equal(t, "PRIVATE KEY", b.Type, "%s pkcs8: block", name)
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			require.NoError(t, err, "%s pkcs8", name)
			_, err = tls.X509KeyPair([]byte(str(t, d, "certificate")), []byte(str(t, d, "private_key")))
			assert.NoError(t, err, "%s pkcs8: key does not match", name)
			_, isEd25519 := k.(ed25519.PrivateKey)
			assert.Equal(t, name == "ed25519.example.com", isEd25519, "%s pkcs8: key type %T", name, k)
		}
		r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/example.com", url.Values{"format": {"xml"}}, nil)
		assert.Equal(t, 400, r.status, "format=xml: %s, want 400", r)
		r = mustRaw(t, v, v.rootToken, "GET", mount+"/certs/example.com", url.Values{"private_key_format": {"pkcs1"}}, nil)
		assert.Equal(t, 400, r.status, "private_key_format=pkcs1: %s, want 400", r)
	})

	t.Run("wildcard", func(t *testing.T) {
		want := certs["*.example.com"].Serial
		out := mustCLI(t, v, "read", "-format=json", mount+"/certs/*.example.com")
		var s api.Secret
		require.NoError(t, json.Unmarshal([]byte(out), &s), "vault read -format=json:\n%s", out)
		assert.Equal(t, "*.example.com", s.Data["common_name"], "vault read %s/certs/*.example.com: common_name", mount)
		assert.Equal(t, want, s.Data["serial_number"], "vault read %s/certs/*.example.com: serial", mount)
		assert.Equal(t, want, strings.TrimSpace(mustCLI(t, v, "read", "-field=serial_number", mount+"/certs/*.example.com")), "vault read -field=serial_number")
		for _, p := range []string{"*.example.com", "%2A.example.com"} {
			r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+p, nil, nil)
			assert.Equal(t, 200, r.status, "GET /v1/%s/certs/%s: %s", mount, p, r)
			assert.Equal(t, want, r.data()["serial_number"], "GET /v1/%s/certs/%s: %s", mount, p, r)
			assert.Equal(t, "*.example.com", r.data()["common_name"], "GET /v1/%s/certs/%s: %s", mount, p, r)
		}
	})

	t.Run("unknown name is 404", func(t *testing.T) {
		const name = "missing.example.com"
		before := e.emu.stats(t).FileCallsByName[name]
		r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+name, nil, nil)
		assert.Equal(t, 404, r.status, "GET unknown name: %s, want 404", r)
		c := v.cli(v.rootToken, "", "read", mount+"/certs/"+name)
		assert.Equal(t, 2, c.code, "vault read unknown name: want exit 2 and \"No value found\": %s", c)
		assert.Contains(t, c.stdout+c.stderr, "No value found at "+mount+"/certs/"+name, "vault read unknown name: want exit 2 and \"No value found\"")
		assert.NotEqual(t, before, e.emu.stats(t).FileCallsByName[name], "the 404 did not come from NHN: the emulator was not asked for %s", name)
	})

	t.Run("unsafe names never reach NHN", func(t *testing.T) {
		require.NoError(t, e.emu.admin.ResetStats(ctx))
		for _, p := range []string{
			// Spaces, '?', '#', '%' and ".." inside a name are valid since
			// NHN's names need not be the CN: TestNames reads them.
			"..%2fconfig", "foo%2fbar", "foo%2Fexample.com", "%2e%2e", "%2e%2e%2fconfig",
			"bad%00name", "bad%0aname", "bad%7fname", "bad%c2%85name", "bad%5cname", strings.Repeat("a", 513),
		} {
			r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+p, nil, nil)
			assert.True(t, is4xx(r.status), "GET /v1/%s/certs/%s: %s, want 4xx", mount, p, r)
		}
		// A whole ".." path segment never reaches the plugin: Vault's HTTP
		// server cleans the path and redirects (307) to the result, where
		// the ACL of that path applies (see TestACL).
		for _, p := range []string{"..", "example.com/..", "../config"} {
			r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+p, nil, nil)
			assert.True(t, r.status == 307 || is4xx(r.status), "GET /v1/%s/certs/%s: %s, want a redirect away from the certificate path or a 4xx", mount, p, r)
		}
		for _, n := range []string{"a/b", `bad\name`, "bad\tname"} {
			c := v.cli(v.rootToken, "", "read", mount+"/certs/"+n)
			assert.NotEqual(t, 0, c.code, "vault read %q: %s, want a 4xx", n, c)
			assert.Contains(t, c.stderr, "Code: 4", "vault read %q: want a 4xx", n)
		}
		st := e.emu.stats(t)
		assert.Zero(t, st.FileCalls, "unsafe names reached the emulator: file calls %v", st.FileCallsByName)
		assert.Zero(t, st.ListCalls, "unsafe names reached the emulator: list calls")
	})

	t.Run("expired certificate is served with a warning", func(t *testing.T) {
		s := readCert(t, v, "expired.example.com", nil)
		leaf := parseCertPEM(t, "expired", str(t, s.Data, "certificate"))
		require.False(t, time.Now().Before(leaf.NotAfter), "expired.example.com is not expired")
		assert.Contains(t, strings.Join(s.Warnings, " "), "expired", "read of an expired certificate has no warning saying so")
	})
}
