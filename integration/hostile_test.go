package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostileBound is how long Vault may take to refuse hostile input: nothing
// hostile may make it wait on NHN or work for long.
const hostileBound = 10 * time.Second

// TestHostileInput sends hostile certificate names, config values and
// request bodies through a real (non-dev) Vault, and has NHN (a proxy in
// front of the emulator) serve hostile certificate files. Each must get a
// clear 4xx (input) or 502 (upstream) answer, fast, with no panic, nothing
// cached (the plugin's cache entries in Vault's file storage are counted)
// and nothing written half (the config reads back unchanged). Every case
// logs what the user saw.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withVaultMode(realVault))
	v := e.vault
	proxy := newNHNProxy(t, e.emu.url)
	mustCLI(t, v, "write", mount+"/config", "endpoint="+proxy.url, "auth_endpoint="+proxy.url)

	// One good entry, so that a purge would show.
	r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/example.com", nil, nil)
	require.Equal(t, 200, r.status, "read example.com: %s", r)
	require.Equal(t, 1, cacheEntriesOnDisk(t, v), "after one read: cache entries in the storage, want 1 (is the storage layout what the test expects?)")
	configBefore := mustRaw(t, v, v.rootToken, "GET", mount+"/config", nil, nil)
	var table []string
	row := func(kind, input string, r rawResponse, d time.Duration) {
		says := r.says()
		if says == "" && len(bytes.TrimSpace(r.body)) == 0 {
			says = "(empty body: Vault's HTTP layer refuses the path before routing it)"
		}
		table = append(table, fmt.Sprintf("| %s | %s | HTTP %d in %s | %s |", kind, input, r.status, d.Round(time.Millisecond),
			strings.ReplaceAll(truncateForTable(says), "|", "/")))
	}
	checkNothingChanged := func(t *testing.T, what string) {
		t.Helper()
		assert.Equal(t, 1, cacheEntriesOnDisk(t, v), "%s: cache entries in the storage, want still 1", what)
		after := mustRaw(t, v, v.rootToken, "GET", mount+"/config", nil, nil)
		assert.Equal(t, configBefore.data(), after.data(), "%s changed the config:\nbefore %s\nafter  %s", what, configBefore, after)
	}

	t.Run("names", func(t *testing.T) {
		long := strings.Repeat("a", 10*1024)
		for _, c := range []struct {
			label, raw string
			// vault500: Vault 1.21 itself answers 500 "grpc: error while
			// marshaling: string field contains invalid UTF-8": it cannot
			// send a path that is not UTF-8 to an external plugin over
			// gRPC, so the request never reaches the plugin.
			vault500 bool
		}{
			{"slash", "a/b.example.com", false},
			{"encoded slash %2f", "foo%2fbar.example.com", false},
			{"encoded ../config", "..%2fconfig", false},
			{"encoded %2e%2e", "%2e%2e", false},
			{"NUL", "bad%00name.example.com", false},
			{"line break", "bad%0aname.example.com", false},
			{"DEL", "bad%7fname.example.com", false},
			{"10 KB long", long, false},
			{"invalid UTF-8", "bad%ff%fename.example.com", true},
			{"backslash", "bad%5cname.example.com", false},
			{"C1 control (NEL)", "bad%c2%85name.example.com", false},
			// Spaces, Hangul, '%' and the like are valid names since NHN's
			// release of 2025-11-25: TestNames reads them.
		} {
			before := proxy.requestCount()
			r, d := timedRaw(t, v, "GET", mount+"/certs/"+c.raw, nil)
			label := c.label
			row("name", label, r, d)
			if c.vault500 {
				assert.Equal(t, 500, r.status, "name %s: %s; want Vault's own HTTP 500 about invalid UTF-8", label, r)
				assert.Contains(t, r.says(), "invalid UTF-8", "name %s: %s; want Vault's own HTTP 500 about invalid UTF-8", label, r)
			} else {
				assert.True(t, is4xx(r.status), "name %s: %s; want a 4xx", label, r)
			}
			assert.LessOrEqual(t, d, hostileBound, "name %s: answered in %s", label, d)
			assert.NotContains(t, r.says(), "\x00", "name %s: the answer echoes a NUL byte", label)
			// The metadata path shares the name rules.
			mr := mustRaw(t, v, v.rootToken, "GET", mount+"/metadata/"+c.raw, nil, nil)
			if !c.vault500 {
				assert.True(t, is4xx(mr.status), "metadata of name %s: %s; want a 4xx", label, mr)
			}
			assert.Equal(t, before, proxy.requestCount(), "name %s reached NHN", label)
		}
		checkNothingChanged(t, "hostile names")
	})

	t.Run("names NHN lists", func(t *testing.T) {
		ctx := ctxT(t)
		hostile := []string{"../config", "a/b.example.com", `back\slash.example.com`, strings.Repeat("l", 600) + ".example.com", ".."}
		for _, n := range hostile {
			_, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: n, DNSNames: []string{"hostile.example.com"}})
			require.NoError(t, err, "adding %q to the emulator", n)
		}
		t.Cleanup(func() {
			for _, n := range hostile {
				_ = e.emu.admin.Remove(ctxT(t), n)
			}
		})
		r, d := timedRaw(t, v, "LIST", mount+"/certs", url.Values{"status": {"all"}})
		row("list", fmt.Sprintf("%d hostile names among NHN's certificates", len(hostile)), r, d)
		keys, _ := listKeys(t, r)
		for _, n := range hostile {
			assert.NotContains(t, keys, n, "LIST shows the hostile name %q", n)
		}
		assert.Contains(t, strings.Join(r.warnings(), " "), fmt.Sprintf("%d certificate name(s) in NHN cannot be served and were left out", len(hostile)),
			"LIST with hostile names: warnings; want one saying %d were left out", len(hostile))
		assert.Len(t, keys, 7, "LIST with hostile names: keys; want the 7 demo certificates")
		checkNothingChanged(t, "hostile names from NHN")
	})

	t.Run("config", func(t *testing.T) {
		huge := strings.Repeat("k", 2<<20)
		// Vault 1.21 refuses a JSON string over 1 MiB itself; earlier
		// lines route it, and the plugin's own bound refuses it.
		hugeWant, hugeStatus := "JSON string value exceeds allowed length", 500
		if !vaultHasJSONLimits() {
			hugeWant, hugeStatus = "app_key is 2097152 bytes long; at most 1024", 400
		}
		for _, c := range []struct {
			label string
			body  map[string]any
			want  string
			// status is what Vault answers; 0 means 400. Vault 1.21's
			// HTTP layer itself answers 500 to a JSON string over 1 MiB
			// (max_json_string_value_length); the plugin never sees it.
			status int
		}{
			{"cache_ttl of type bool", map[string]any{"cache_ttl": true}, "cache_ttl", 0},
			{"cache_ttl of type list", map[string]any{"cache_ttl": []any{1, 2}}, "cache_ttl", 0},
			{"request_timeout of type object", map[string]any{"request_timeout": map[string]any{"a": 1}}, "request_timeout", 0},
			{"app_key of type list", map[string]any{"app_key": []any{"a", "b"}}, "app_key", 0},
			{"app_key of type object", map[string]any{"app_key": map[string]any{"x": "y"}}, "app_key", 0},
			{"region of type number", map[string]any{"region": 123}, "region", 0},
			{"cache_ttl 100000h", map[string]any{"cache_ttl": "100000h"}, "cache_ttl must be at most", 0},
			{"cache_ttl 1e30 seconds", map[string]any{"cache_ttl": 1e30}, "cache_ttl", 0},
			{"request_timeout 10^20 seconds", map[string]any{"request_timeout": "99999999999999999999"}, "request_timeout", 0},
			{"request_timeout 2562047h (overflows nanoseconds)", map[string]any{"request_timeout": "2562047h"}, "request_timeout must be at most", 0},
			{"refresh_interval -1", map[string]any{"refresh_interval": -1}, "refresh_interval", 0},
			{"app_key of 2 KB", map[string]any{"app_key": strings.Repeat("k", 2048)}, "app_key is 2048 bytes long; at most 1024", 0},
			{"app_key of 2 MiB", map[string]any{"app_key": huge}, hugeWant, hugeStatus},
			{"secret_access_key with NUL", map[string]any{"secret_access_key": "a\x00b"}, "must not contain line breaks or NUL", 0},
			{"access_key_id with a line break", map[string]any{"access_key_id": "id\nX-Injected: 1"}, "must not contain line breaks or NUL", 0},
			{"endpoint with credentials", map[string]any{"endpoint": "https://user:" + e.emu.secret + "@certmanager.example.com"}, "must not carry credentials", 0},
			{"auth_endpoint with credentials", map[string]any{"auth_endpoint": "https://" + e.emu.secret + "@oauth.example.com"}, "must not carry credentials", 0},
			{"endpoint ftp://", map[string]any{"endpoint": "ftp://certmanager.example.com"}, "must be an http or https URL", 0},
			{"endpoint file://", map[string]any{"endpoint": "file:///etc/passwd"}, "must be an http or https URL", 0},
			{"endpoint gopher://", map[string]any{"endpoint": "gopher://127.0.0.1:25/"}, "must be an http or https URL", 0},
			{"endpoint javascript:", map[string]any{"endpoint": "javascript:alert(1)"}, "must be an http or https URL", 0},
			{"endpoint unix://", map[string]any{"endpoint": "unix:///var/run/docker.sock"}, "must be an http or https URL", 0},
			{"endpoint without scheme", map[string]any{"endpoint": "//certmanager.example.com"}, "must be an http or https URL", 0},
			{"endpoint without host", map[string]any{"endpoint": "http://"}, "must name a host", 0},
			{"endpoint with port 99999", map[string]any{"endpoint": "http://127.0.0.1:99999"}, "endpoint", 0},
			{"endpoint with a query", map[string]any{"endpoint": "https://certmanager.example.com/?x=1"}, "without query", 0},
			{"endpoint with a space", map[string]any{"endpoint": "https://exa mple.com"}, "endpoint", 0},
			{"endpoint of 4 KB", map[string]any{"endpoint": "https://" + strings.Repeat("a", 4096) + ".com"}, "endpoint is", 0},
		} {
			r, d := timedRawBody(t, v, "POST", mount+"/config", c.body)
			row("config", c.label, r, d)
			if c.status == 0 {
				c.status = 400
			}
			// The answer is shown truncated: it may echo 2 MiB of input.
			assert.Equal(t, c.status, r.status, "config %s: %s; want HTTP %d mentioning %q", c.label, truncateForTable(r.String()), c.status, c.want)
			assert.True(t, strings.Contains(r.says(), c.want), "config %s: %s; want HTTP %d mentioning %q", c.label, truncateForTable(r.String()), c.status, c.want)
			assertNoSecret(t, e, "the answer to config "+c.label, string(r.body))
			assert.LessOrEqual(t, d, hostileBound, "config %s: answered in %s", c.label, d)
			checkNothingChanged(t, "config "+c.label)
		}

		// Over Vault's request size cap (max_request_size, 32 MiB), in
		// strings short enough for Vault's JSON limits.
		big := map[string]any{"app_key": "k"}
		for i := range 40 {
			big[fmt.Sprintf("junk%d", i)] = strings.Repeat("j", 900<<10)
		}
		r, d := timedRawBody(t, v, "POST", mount+"/config", big)
		row("config", "body of 36 MB", r, d)
		assert.Equal(t, 413, r.status, "a 36 MB config body: %s; want HTTP 413", truncateForTable(r.String()))
		if vaultHasJSONLimits() {
			assert.True(t, strings.Contains(r.says(), "too large"), "a 36 MB config body: %s; want HTTP 413", truncateForTable(r.String()))
		}
		// Not JSON at all: Vault 1.21's JSON limit check answers 500
		// "malformed JSON" before anything is routed to the plugin; earlier
		// lines answer 400 "error parsing JSON".
		r, d = timedRawBytes(t, v, "POST", mount+"/config", []byte(`{"app_key": "x", "cache_ttl": `))
		row("config", "truncated JSON body", r, d)
		wantStatus, wantText := 500, "malformed JSON"
		if !vaultHasJSONLimits() {
			wantStatus, wantText = 400, "error parsing JSON"
		}
		assert.Equal(t, wantStatus, r.status, "a truncated JSON body: %s; want Vault's HTTP %d %q", r, wantStatus, wantText)
		assert.Contains(t, r.says(), wantText, "a truncated JSON body: %s; want Vault's HTTP %d %q", r, wantStatus, wantText)
		checkNothingChanged(t, "oversized and broken bodies")
	})

	t.Run("files", func(t *testing.T) {
		files := hostileFiles(t)
		for _, f := range files {
			name := "hostile-" + f.id + ".example.com"
			proxy.override(name, f.body)
			r, d := timedRaw(t, v, "GET", mount+"/certs/"+name, nil)
			row("file", f.label, r, d)
			assert.Equal(t, 502, r.status, "file %s: %s; want HTTP 502 saying %q", f.label, truncateForTable(r.String()), f.want)
			assert.True(t, strings.Contains(r.says(), f.want), "file %s: %s; want HTTP 502 saying %q", f.label, truncateForTable(r.String()), f.want)
			for _, pem := range []string{"BEGIN", "PRIVATE KEY"} {
				assert.False(t, bytes.Contains(r.body, []byte(pem)), "file %s: the answer holds PEM material: %s", f.label, truncateForTable(r.String()))
			}
			assert.LessOrEqual(t, d, hostileBound, "file %s: answered in %s", f.label, d)
			assert.Equal(t, 1, proxy.calls(name), "file %s: NHN was asked more than once (a bad file is not retried)", f.label)
			// A second read is refused again. It asks NHN again (nothing
			// was cached), except for a key the engine could not open: that
			// refusal is remembered until the passphrase or the file changes
			// or cache_ttl passes (CONTRACT, passphrases), so NHN is not
			// asked and nothing is derived again.
			r2 := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+name, nil, nil)
			assert.Equal(t, 502, r2.status, "file %s, second read: %s", f.label, truncateForTable(r2.String()))
			assert.True(t, strings.Contains(r2.says(), f.want), "file %s, second read: %s; want %q", f.label, truncateForTable(r2.String()), f.want)
			if f.refusalKept {
				assert.Equal(t, 1, proxy.calls(name), "file %s: the second read asked NHN although the refusal is remembered", f.label)
			} else {
				assert.Equal(t, 2, proxy.calls(name), "file %s: the second read did not ask NHN: something was cached", f.label)
			}
		}
		checkNothingChanged(t, "hostile files")
	})

	log := tail(v.logPath, 1<<30)
	for _, bad := range []string{"panic", "plugin process exited", "goroutine "} {
		// Not assert.NotContains: that would print the whole log.
		assert.False(t, strings.Contains(log, bad), "Vault's log has %q: the plugin may have crashed", bad)
	}
	r = mustRaw(t, v, v.rootToken, "GET", mount+"/certs/example.com", nil, nil)
	assert.Equal(t, 200, r.status, "after all of it, the good certificate: %s", truncateForTable(r.String()))
	assert.Empty(t, r.warnings(), "after all of it, the good certificate: %s", truncateForTable(r.String()))
	t.Logf("hostile input, what the user sees:\n| kind | input | answer | message |\n|---|---|---|---|\n%s", strings.Join(table, "\n"))
}

func truncateForTable(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

type hostileFile struct {
	id, label string
	body      []byte
	want      string
	// refusalKept: a key that cannot be opened (no passphrase set); the
	// engine answers the next reads from the remembered refusal.
	refusalKept bool
}

// hostileFiles builds certificate files NHN should never hold.
func hostileFiles(t *testing.T) []hostileFile {
	t.Helper()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	cert := func(i int, key *ecdsa.PrivateKey) []byte {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 1)),
			Subject:      pkix.Name{CommonName: fmt.Sprintf("c%d", i)},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	leaf := cert(0, ecKey)

	var thousand bytes.Buffer
	for i := range 1000 {
		thousand.Write(cert(i, ecKey))
	}
	thousand.Write(keyPEM(ecKey))

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	//lint:ignore SA1019 a legacy encrypted key is what the test needs
	legacy, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), []byte("password"), x509.PEMCipherAES256)
	require.NoError(t, err)
	junk := make([]byte, 512)
	_, _ = rand.Read(junk)
	encPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: junk})
	damaged := []byte(strings.Replace(string(leaf), "\n", "\n!!!!", 2))

	return []hostileFile{
		{"1000", fmt.Sprintf("PEM with 1,000 certificates (%d KB)", thousand.Len()/1024), thousand.Bytes(), "more than 32 certificates", false},
		{"mismatch", "key of another certificate", append(append([]byte{}, leaf...), keyPEM(otherKey)...), "does not match the leaf", false},
		{"pkcs8-encrypted", "ENCRYPTED PRIVATE KEY (PKCS#8)", append(append([]byte{}, leaf...), encPKCS8...), "the private key is encrypted", false},
		{"legacy-encrypted", "RSA PRIVATE KEY with Proc-Type: 4,ENCRYPTED", append(append([]byte{}, leaf...), pem.EncodeToMemory(legacy)...), "the private key is encrypted", true},
		// As `openssl pkey` and a server do, the first key is the key.
		{"two-keys", "two private keys, another one first", append(append(append([]byte{}, leaf...), keyPEM(otherKey)...), keyPEM(ecKey)...), "does not match the leaf certificate", false},
		{"key-only", "a key and no certificate", keyPEM(ecKey), "holds no certificate", false},
		{"cert-only", "a certificate and no key", leaf, "holds no private key", false},
		{"damaged", "a block with broken base64", append(damaged, keyPEM(ecKey)...), "cannot be", false},
		{"empty", "an empty file", []byte{}, "not a PEM file", false},
		{"binary", "binary garbage", junk, "not a PEM file", false},
		{"over-cap", "1.5 MiB of certificates (over the 1 MiB cap)", bytes.Repeat(leaf, (3<<19)/len(leaf)+1), "larger than", false},
	}
}

// vaultHasJSONLimits reports whether the Vault under test checks JSON
// limits (max_json_string_value_length and friends) before routing: v1.21
// and later. Earlier lines route the request, and the plugin refuses.
func vaultHasJSONLimits() bool {
	return !strings.HasPrefix(wantVaultVersion, "v1.19.") && !strings.HasPrefix(wantVaultVersion, "v1.20.")
}
