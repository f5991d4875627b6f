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
)

// TestRead checks `read nhncert/certs/<name>` through the CLI and HTTP:
// fields, formats, wildcards, unknown and unsafe names.
func TestRead(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault
	ctx := ctxT(t)
	certs, err := e.emu.admin.Certs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	serials := map[string]string{}
	for _, c := range certs {
		serials[c.Name] = c.Serial
	}

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
				if got := serialHex(leaf.SerialNumber); got != serials[c.name] {
					t.Errorf("serial %s; the emulator serves %s", got, serials[c.name])
				}
				if len(s.Warnings) != 0 {
					t.Errorf("warnings: %v", s.Warnings)
				}
				// The raw answer: no lease, no expiration anywhere.
				r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+url.PathEscape(c.name), nil, nil)
				var body map[string]any
				if err := json.Unmarshal(r.body, &body); err != nil || r.status != 200 {
					t.Fatalf("GET: %s", r)
				}
				if body["lease_duration"] != float64(0) || body["lease_id"] != "" || body["renewable"] != false {
					t.Errorf("GET answer has a lease: lease_id=%v lease_duration=%v renewable=%v", body["lease_id"], body["lease_duration"], body["renewable"])
				}
			})
		}
		// The root is last when the file has it.
		s := readCert(t, v, "api.example.com", nil)
		chain := strList(t, s.Data, "ca_chain")
		root := parseCertPEM(t, "root", chain[len(chain)-1])
		if root.CheckSignatureFrom(root) != nil {
			t.Errorf("api.example.com: the last of ca_chain is not the self-signed root")
		}
		// The key is returned as the file had it.
		for name, typ := range map[string]string{"example.com": "RSA PRIVATE KEY", "api.example.com": "PRIVATE KEY", "*.example.com": "EC PRIVATE KEY"} {
			b, _ := pem.Decode([]byte(str(t, readCert(t, v, name, nil).Data, "private_key")))
			if b == nil || b.Type != typ {
				t.Errorf("%s: private_key block %v, want %s as stored", name, b, typ)
			}
		}
	})

	t.Run("cli", func(t *testing.T) {
		out := mustCLI(t, v, "read", mount+"/certs/example.com")
		for _, f := range certFields {
			if !strings.Contains(out, f) {
				t.Errorf("vault read does not show %s:\n%s", f, out)
			}
		}
		for _, f := range []string{"lease_id", "lease_duration"} {
			if strings.Contains(out, f) {
				t.Errorf("vault read shows %s:\n%s", f, out)
			}
		}
		cert := mustCLI(t, v, "read", "-field=certificate", mount+"/certs/example.com")
		key := mustCLI(t, v, "read", "-field=private_key", mount+"/certs/example.com")
		if _, err := tls.X509KeyPair([]byte(cert), []byte(key)); err != nil {
			t.Errorf("vault read -field=certificate / -field=private_key do not match: %v", err)
		}
	})

	t.Run("format=der", func(t *testing.T) {
		pemLeaf := parseCertPEM(t, "pem", str(t, readCert(t, v, "example.com", nil).Data, "certificate"))
		d := readCert(t, v, "example.com", map[string][]string{"format": {"der"}}).Data
		leaf := parseCertDER(t, "der certificate", str(t, d, "certificate"))
		if !leaf.Equal(pemLeaf) {
			t.Errorf("der certificate is not the pem one")
		}
		issuer := parseCertDER(t, "der issuing_ca", str(t, d, "issuing_ca"))
		if err := leaf.CheckSignatureFrom(issuer); err != nil {
			t.Errorf("der issuing_ca did not sign the leaf: %v", err)
		}
		for i, c := range strList(t, d, "ca_chain") {
			parseCertDER(t, fmt.Sprintf("der ca_chain[%d]", i), c)
		}
		keyDER, err := base64.StdEncoding.DecodeString(str(t, d, "private_key"))
		if err != nil {
			t.Fatalf("der private_key: %v", err)
		}
		k, err := x509.ParsePKCS1PrivateKey(keyDER)
		if err != nil {
			t.Fatalf("der private_key of example.com (stored as PKCS#1): %v", err)
		}
		if !testkit.PublicKeyMatches(k, leaf) {
			t.Errorf("der private_key does not match the leaf")
		}
		// With pkcs8.
		d = readCert(t, v, "example.com", map[string][]string{"format": {"der"}, "private_key_format": {"pkcs8"}}).Data
		keyDER, _ = base64.StdEncoding.DecodeString(str(t, d, "private_key"))
		if _, err := x509.ParsePKCS8PrivateKey(keyDER); err != nil {
			t.Errorf("der+pkcs8 private_key: %v", err)
		}
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
		if fmt.Sprint(types) != "[RSA PRIVATE KEY CERTIFICATE CERTIFICATE]" {
			t.Fatalf("pem_bundle blocks %v; want key, leaf, issuer", types)
		}
		if _, err := tls.X509KeyPair([]byte(bundle), []byte(bundle)); err != nil {
			t.Errorf("pem_bundle: key and leaf do not match: %v", err)
		}
		if serialHex(certsIn[0].SerialNumber) != str(t, d, "serial_number") {
			t.Errorf("pem_bundle: the first certificate is not the leaf")
		}
		if err := certsIn[0].CheckSignatureFrom(certsIn[1]); err != nil {
			t.Errorf("pem_bundle: the second certificate did not sign the leaf: %v", err)
		}
	})

	t.Run("private_key_format=pkcs8", func(t *testing.T) {
		for _, name := range []string{"example.com", "*.example.com", "ed25519.example.com"} {
			d := readCert(t, v, name, map[string][]string{"private_key_format": {"pkcs8"}}).Data
			b, _ := pem.Decode([]byte(str(t, d, "private_key")))
			if b == nil || b.Type != "PRIVATE KEY" {
				t.Fatalf("%s pkcs8: block %v", name, b)
			}
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				t.Fatalf("%s pkcs8: %v", name, err)
			}
			if _, err := tls.X509KeyPair([]byte(str(t, d, "certificate")), []byte(str(t, d, "private_key"))); err != nil {
				t.Errorf("%s pkcs8: key does not match: %v", name, err)
			}
			if _, ok := k.(ed25519.PrivateKey); ok != (name == "ed25519.example.com") {
				t.Errorf("%s pkcs8: key type %T", name, k)
			}
		}
		r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/example.com", url.Values{"format": {"xml"}}, nil)
		if r.status != 400 {
			t.Errorf("format=xml: %s, want 400", r)
		}
		r = mustRaw(t, v, v.rootToken, "GET", mount+"/certs/example.com", url.Values{"private_key_format": {"pkcs1"}}, nil)
		if r.status != 400 {
			t.Errorf("private_key_format=pkcs1: %s, want 400", r)
		}
	})

	t.Run("wildcard", func(t *testing.T) {
		want := serials["*.example.com"]
		out := mustCLI(t, v, "read", "-format=json", mount+"/certs/*.example.com")
		var s api.Secret
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("vault read -format=json: %v\n%s", err, out)
		}
		if s.Data["common_name"] != "*.example.com" || s.Data["serial_number"] != want {
			t.Errorf("vault read %s/certs/*.example.com: common_name %v serial %v, want *.example.com %s", mount, s.Data["common_name"], s.Data["serial_number"], want)
		}
		if got := strings.TrimSpace(mustCLI(t, v, "read", "-field=serial_number", mount+"/certs/*.example.com")); got != want {
			t.Errorf("vault read -field=serial_number: %q, want %q", got, want)
		}
		for _, p := range []string{"*.example.com", "%2A.example.com"} {
			r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+p, nil, nil)
			if r.status != 200 || r.data()["serial_number"] != want || r.data()["common_name"] != "*.example.com" {
				t.Errorf("GET /v1/%s/certs/%s: %s", mount, p, r)
			}
		}
	})

	t.Run("unknown name is 404", func(t *testing.T) {
		const name = "missing.example.com"
		before := e.emu.stats(t).FileCallsByName[name]
		r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+name, nil, nil)
		if r.status != 404 {
			t.Errorf("GET unknown name: %s, want 404", r)
		}
		c := v.cli(v.rootToken, "", "read", mount+"/certs/"+name)
		if c.code != 2 || !strings.Contains(c.stdout+c.stderr, "No value found at "+mount+"/certs/"+name) {
			t.Errorf("vault read unknown name: want exit 2 and \"No value found\": %s", c)
		}
		if after := e.emu.stats(t).FileCallsByName[name]; after == before {
			t.Errorf("the 404 did not come from NHN: the emulator was not asked for %s", name)
		}
	})

	t.Run("unsafe names never reach NHN", func(t *testing.T) {
		if err := e.emu.admin.ResetStats(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{
			"a..b.example.com", "...", "example.com..", "..%2fconfig", "foo%2fbar", "foo%2Fexample.com",
			"%2e%2e", "%2e%2e%2fconfig", "bad%00name", "bad%0aname", "bad%7fname", "bad%20name",
			"bad%5cname", "bad%3fname", "bad%23name", "bad%25name", strings.Repeat("a", 254),
		} {
			r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+p, nil, nil)
			if r.status < 400 || r.status > 499 {
				t.Errorf("GET /v1/%s/certs/%s: %s, want 4xx", mount, p, r)
			}
		}
		// A whole ".." path segment never reaches the plugin: Vault's HTTP
		// server cleans the path and redirects (307) to the result, where
		// the ACL of that path applies (see TestACL).
		for _, p := range []string{"..", "example.com/..", "../config"} {
			r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+p, nil, nil)
			if r.status != 307 && (r.status < 400 || r.status > 499) {
				t.Errorf("GET /v1/%s/certs/%s: %s, want a redirect away from the certificate path or a 4xx", mount, p, r)
			}
		}
		for _, n := range []string{"a..b", "bad name", "foo%2fbar"} {
			c := v.cli(v.rootToken, "", "read", mount+"/certs/"+n)
			if c.code == 0 || !strings.Contains(c.stderr, "Code: 4") {
				t.Errorf("vault read %q: %s, want a 4xx", n, c)
			}
		}
		st := e.emu.stats(t)
		if st.FileCalls != 0 || st.ListCalls != 0 {
			t.Errorf("unsafe names reached the emulator: %d file calls %v, %d list calls", st.FileCalls, st.FileCallsByName, st.ListCalls)
		}
	})

	t.Run("expired certificate is served with a warning", func(t *testing.T) {
		s := readCert(t, v, "expired.example.com", nil)
		leaf := parseCertPEM(t, "expired", str(t, s.Data, "certificate"))
		if time.Now().Before(leaf.NotAfter) {
			t.Fatalf("expired.example.com is not expired")
		}
		if !strings.Contains(strings.Join(s.Warnings, " "), "expired") {
			t.Errorf("read of an expired certificate has no warning saying so: %v", s.Warnings)
		}
	})
}
