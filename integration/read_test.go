package integration

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// certFields are the fields of a certificate read, as the contract names
// them.
var certFields = []string{"certificate", "issuing_ca", "ca_chain", "private_key", "private_key_type",
	"serial_number", "common_name", "dns_names", "not_before", "not_after"}

// serialHex formats a serial as Vault PKI does (colon-separated lowercase
// hex), independently of the plugin's code.
func serialHex(n *big.Int) string {
	b := n.Bytes()
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

func parseCertPEM(t *testing.T, what, s string) *x509.Certificate {
	t.Helper()
	b, rest := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s is not one PEM CERTIFICATE block: %q", what, s)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return c
}

func parseCertDER(t *testing.T, what, s string) *x509.Certificate {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%s is not base64: %v", what, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return c
}

func str(t *testing.T, d map[string]any, k string) string {
	t.Helper()
	s, ok := d[k].(string)
	if !ok {
		t.Fatalf("field %s is %T (%v), want a string", k, d[k], d[k])
	}
	return s
}

func strList(t *testing.T, d map[string]any, k string) []string {
	t.Helper()
	l, ok := d[k].([]any)
	if !ok {
		t.Fatalf("field %s is %T (%v), want a list", k, d[k], d[k])
	}
	out := make([]string, len(l))
	for i, x := range l {
		if out[i], ok = x.(string); !ok {
			t.Fatalf("field %s[%d] is %T", k, i, x)
		}
	}
	return out
}

// readCert reads mount/certs/name through the API client with query
// parameters and fails the test on error.
func readCert(t *testing.T, v *vaultServer, name string, query map[string][]string) *api.Secret {
	t.Helper()
	s, err := v.client.Logical().ReadWithData(mount+"/certs/"+name, query)
	if err != nil || s == nil {
		t.Fatalf("read %s/certs/%s %v: %v (secret %v)", mount, name, query, err, s)
	}
	return s
}

// checkPEMRead checks a default-format read: every field, the key matches
// the leaf, the chain is in signing order, metadata agrees with the leaf,
// and it holds no lease and no expiration.
func checkPEMRead(t *testing.T, s *api.Secret, name, keyType string, chainLen int) *x509.Certificate {
	t.Helper()
	d := s.Data
	for _, f := range certFields {
		if _, ok := d[f]; !ok {
			t.Errorf("read %s: no field %s", name, f)
		}
	}
	for _, f := range []string{"expiration", "ttl", "lease_duration"} {
		if _, ok := d[f]; ok {
			t.Errorf("read %s: has a %q field next to the certificate (Vault Agent would sleep on it)", name, f)
		}
	}
	if s.LeaseID != "" || s.LeaseDuration != 0 || s.Renewable {
		t.Errorf("read %s: lease %q, duration %d, renewable %v; want none", name, s.LeaseID, s.LeaseDuration, s.Renewable)
	}
	certPEM, keyPEM := str(t, d, "certificate"), str(t, d, "private_key")
	if _, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM)); err != nil {
		t.Errorf("read %s: private_key does not match certificate: %v", name, err)
	}
	leaf := parseCertPEM(t, name+" certificate", certPEM)
	if got := str(t, d, "private_key_type"); got != keyType {
		t.Errorf("read %s: private_key_type %q, want %q", name, got, keyType)
	}
	if got, want := str(t, d, "serial_number"), serialHex(leaf.SerialNumber); got != want {
		t.Errorf("read %s: serial_number %q, leaf has %q", name, got, want)
	}
	if got := str(t, d, "common_name"); got != leaf.Subject.CommonName || got != name {
		t.Errorf("read %s: common_name %q (leaf %q)", name, got, leaf.Subject.CommonName)
	}
	if got := strList(t, d, "dns_names"); fmt.Sprint(got) != fmt.Sprint(leaf.DNSNames) {
		t.Errorf("read %s: dns_names %v, leaf has %v", name, got, leaf.DNSNames)
	}
	for f, want := range map[string]time.Time{"not_before": leaf.NotBefore, "not_after": leaf.NotAfter} {
		got, err := time.Parse(time.RFC3339, str(t, d, f))
		if err != nil || !got.Equal(want) {
			t.Errorf("read %s: %s %q is not RFC 3339 for %s (%v)", name, f, d[f], want, err)
		}
	}
	chain := strList(t, d, "ca_chain")
	if len(chain) != chainLen {
		t.Fatalf("read %s: ca_chain has %d certificates, want %d", name, len(chain), chainLen)
	}
	if chainLen > 0 && str(t, d, "issuing_ca") != chain[0] {
		t.Errorf("read %s: issuing_ca is not ca_chain[0]", name)
	}
	child := leaf
	for i, p := range chain {
		c := parseCertPEM(t, fmt.Sprintf("%s ca_chain[%d]", name, i), p)
		if err := child.CheckSignatureFrom(c); err != nil {
			t.Errorf("read %s: ca_chain[%d] did not sign the certificate before it: %v", name, i, err)
		}
		child = c
	}
	return leaf
}

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
		if !k.PublicKey.Equal(leaf.PublicKey) {
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
		var types []string
		var certsIn []*x509.Certificate
		for rest := []byte(bundle); ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			types = append(types, b.Type)
			if b.Type == "CERTIFICATE" {
				c, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				certsIn = append(certsIn, c)
			}
		}
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
