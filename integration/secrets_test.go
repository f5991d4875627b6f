package integration

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecretsNeverLeak runs a dev Vault at trace level with a file audit
// device, the plugin behind a recording proxy in front of the emulator,
// through a full run: config writes (v1.3 and v1.1, CLI and HTTP), config
// reads, lists, reads in every format, metadata reads, a token re-issue,
// and errors (NHN down, a wrong secret, bad files, hostile names, a config
// write with credentials in a URL). Then no secret may show anywhere:
//
//   - the Secret Access Keys (the right one and a wrong one), every bearer
//     token the token service issued or the plugin sent, and every private
//     key NHN served (each base64 line of its PEM body that is not public
//     material, and its private scalar in hex) must be in none of Vault's
//     log lines (plugin lines included, at trace level), none of the audit
//     log's entries, and no HTTP response body or CLI output, except the
//     private_key field of a certificate read (and the certificate field of
//     a format=pem_bundle read, which holds the key by contract);
//   - in the audit log, the secret and a served key appear only HMAC'd:
//     sys/audit-hash gives their HMAC, which must be there.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withVaultArgs("-log-level=trace"))
	v := e.vault
	proxy := newNHNProxy(t, e.emu.url)
	auditPath := filepath.Join(e.dir, "audit.log")
	mustCLI(t, v, "audit", "enable", "file", "file_path="+auditPath)

	// Everything the user gets back, with the fields allowed to hold a key.
	type output struct {
		what      string
		body      []byte
		keyFields []string
	}
	var outputs []output
	keep := func(what string, body []byte, keyFields ...string) {
		outputs = append(outputs, output{what, body, keyFields})
	}
	http := func(method, path string, q url.Values, body any, keyFields ...string) rawResponse {
		t.Helper()
		r := mustRaw(t, v, v.rootToken, method, path, q, body)
		keep(fmt.Sprintf("%s /v1/%s?%s (HTTP %d)", method, path, q.Encode(), r.status), r.body, keyFields...)
		return r
	}
	cli := func(stdin string, args ...string) cliResult {
		t.Helper()
		r := v.cli(v.rootToken, stdin, args...)
		keep("vault "+strings.Join(args, " "), []byte(r.stdout+r.stderr))
		return r
	}
	const (
		m11    = "nhncert-v11"
		mWrong = "nhncert-wrong"
	)
	wrongSecret := "itest-WRONG-SECRET-" + randomHex(16)

	// Config writes: the secret through the CLI's stdin and in an HTTP body.
	cr := cli(e.emu.secret, "write", mount+"/config", "endpoint="+proxy.url, "auth_endpoint="+proxy.url, "secret_access_key=-", "refresh_interval=0")
	require.Equal(t, 0, cr.code, "%s", cr)
	for _, m := range []string{m11, mWrong} {
		require.NoError(t, e.enable(m))
	}
	secretFor := map[string]string{m11: e.emu.secret, mWrong: wrongSecret}
	for _, m := range []string{m11, mWrong} {
		r := http("POST", m+"/config", nil, map[string]any{
			"app_key": e.emu.appKey, "access_key_id": e.emu.accessKeyID, "secret_access_key": secretFor[m],
			"endpoint": proxy.url, "auth_endpoint": proxy.url, "api_version": map[string]string{m11: "v1.1", mWrong: "v1.3"}[m],
			"refresh_interval": 0,
		})
		require.Contains(t, []int{200, 204}, r.status, "config write of %s: %s", m, r)
	}
	// A refused write that carries the secret in a URL.
	r := http("POST", mount+"/config", nil, map[string]any{"endpoint": "https://id:" + e.emu.secret + "@certmanager.example.com"})
	assert.Equal(t, 400, r.status, "config write with credentials in the endpoint: %s", r)

	// Config reads, lists, reads in every format, metadata.
	for _, m := range []string{mount, m11} {
		http("GET", m+"/config", nil, nil)
		cli("", "read", m+"/config")
		r := http("LIST", m+"/certs", url.Values{"status": {"all"}}, nil)
		assert.Equal(t, 200, r.status, "list %s: %s", m, r)
		cli("", "list", "-detailed", m+"/certs")
		for _, name := range []string{"example.com", "*.example.com", "api.example.com", "ed25519.example.com", "expired.example.com"} {
			for _, q := range []url.Values{nil, {"format": {"der"}}, {"private_key_format": {"pkcs8"}}} {
				r := http("GET", m+"/certs/"+name, q, nil, "private_key")
				assert.Equal(t, 200, r.status, "read %s%s: %s", m, name, r)
			}
			http("GET", m+"/certs/"+name, url.Values{"format": {"pem_bundle"}}, nil, "private_key", "certificate")
			http("GET", m+"/metadata/"+name, nil, nil)
		}
		cli("", "read", "-format=json", m+"/metadata/example.com")
		cli("", "read", "-field=serial_number", m+"/certs/example.com")
	}

	// Token re-issue: NHN revokes the plugin's token.
	issuedBefore := e.emu.stats(t).TokenIssued
	require.NoError(t, e.emu.admin.RevokeTokens(ctxT(t)))
	r = http("GET", mount+"/certs/example.com", url.Values{"refresh": {"true"}}, nil, "private_key")
	assert.Equal(t, 200, r.status, "read after the token was revoked: %s", r)
	assert.Greater(t, e.emu.stats(t).TokenIssued, issuedBefore, "the run did not cover a token re-issue")

	// Errors.
	r = http("GET", mWrong+"/certs/example.com", nil, nil, "private_key")
	assert.Equal(t, 502, r.status, "read with a wrong secret: %s", r)
	http("LIST", mWrong+"/certs", nil, nil)
	http("GET", mount+"/certs/bad%2fname", nil, nil)
	http("GET", mount+"/certs/missing.example.com", nil, nil)
	for _, f := range []emulator.Fault{
		{Mode: emulator.FaultMismatch, Target: emulator.TargetFiles},
		{Mode: emulator.FaultBadPEM, Target: emulator.TargetFiles},
		{Mode: emulator.FaultGarbage},
		{Mode: emulator.FaultDown},
	} {
		require.NoError(t, e.emu.admin.SetFault(ctxT(t), f))
		for _, m := range []string{mount, m11} {
			http("GET", m+"/certs/example.com", url.Values{"refresh": {"true"}}, nil, "private_key")
			http("GET", m+"/certs/uncached-"+string(f.Mode)+".example.com", nil, nil)
			http("LIST", m+"/certs", nil, nil)
		}
		cli("", "read", mount+"/certs/never-read.example.com")
	}
	require.NoError(t, e.emu.admin.ClearFault(ctxT(t)))

	// ---- What must never show.
	needles := map[string]string{
		e.emu.secret: "the Secret Access Key",
		wrongSecret:  "the wrong Secret Access Key",
	}
	tokens := proxy.seenTokens()
	assert.GreaterOrEqual(t, len(tokens), 2, "the proxy's bearer tokens; the run should cover at least 2 (a re-issue)")
	for _, tok := range tokens {
		needles[tok] = "a bearer token"
	}
	// Private keys: every key block in every file NHN served, and every
	// private_key a read returned (PKCS#8 conversions included).
	var public []string // certificates: their text may share lines by chance
	keyPEMs := map[string]bool{}
	for _, f := range proxy.seenFiles() {
		blocks, _ := testkit.PEMBlocks(f)
		for _, b := range blocks {
			if strings.HasSuffix(b.Type, "PRIVATE KEY") {
				keyPEMs[string(pem.EncodeToMemory(b))] = true
			} else {
				public = append(public, string(pem.EncodeToMemory(b)), base64.StdEncoding.EncodeToString(b.Bytes))
			}
		}
	}
	for _, o := range outputs {
		var body struct {
			Data map[string]any `json:"data"`
		}
		if json.Unmarshal(o.body, &body) != nil {
			continue
		}
		if k, ok := body.Data["private_key"].(string); ok && strings.Contains(k, "PRIVATE KEY") {
			if b, _ := pem.Decode([]byte(k)); b != nil {
				keyPEMs[string(pem.EncodeToMemory(b))] = true
			}
		}
		for _, f := range []string{"certificate", "issuing_ca"} {
			if c, ok := body.Data[f].(string); ok && !strings.Contains(c, "PRIVATE KEY") {
				public = append(public, c)
			}
		}
	}
	keyLines := 0
	for k := range keyPEMs {
		n := addKeyNeedles(t, k, public, needles)
		assert.NotZero(t, n, "no private line found in a key")
		keyLines += n
	}
	assert.GreaterOrEqual(t, len(keyPEMs), 8, "distinct private keys checked; the run reads at least 4 certificates in 2 key forms")

	matches := func(text string) map[string]string {
		found := map[string]string{}
		for n, what := range needles {
			if strings.Contains(text, n) {
				found[n] = what
			}
		}
		return found
	}
	check := func(where, text string) {
		for n, what := range matches(text) {
			t.Errorf("%s holds %s (%.12s...)", where, what, n)
		}
	}
	// The needles find what they stand for: every key's PEM, every token.
	for k := range keyPEMs {
		assert.NotEmpty(t, matches(k), "no needle matches a served key")
	}
	assert.Equal(t, len(tokens), len(matches(strings.Join(tokens, " "))), "the token needles do not match the tokens")

	// Vault's log, plugin lines included.
	logText, err := os.ReadFile(v.logPath)
	require.NoError(t, err)
	logLines := bytes.Count(logText, []byte("\n"))
	pluginLines := 0
	sc := bufio.NewScanner(bytes.NewReader(logText))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "secrets.vault-plugin-secrets-nhncert") {
			pluginLines++
		}
	}
	check("Vault's log ("+v.logPath+")", string(logText))
	// assert.True/False on strings.Contains: the log is too long (and too
	// sensitive) to be printed by a failing assert.Contains.
	assert.False(t, strings.Contains(string(logText), "PRIVATE KEY"), "Vault's log holds %q", "PRIVATE KEY")
	for _, s := range []string{"[TRACE]", "issued a User Access Key token", "bearer token rejected; issuing a new one", "upstream call failed"} {
		assert.True(t, strings.Contains(string(logText), s), "Vault's log has no %q line: the run did not capture what it should (trace level, plugin debug lines)", s)
	}

	// The audit log.
	auditText, err := os.ReadFile(auditPath)
	require.NoError(t, err)
	auditEntries := bytes.Count(auditText, []byte("\n"))
	check("the audit log", string(auditText))
	assert.False(t, strings.Contains(string(auditText), "PRIVATE KEY"), "the audit log holds \"PRIVATE KEY\"")
	hashOf := func(input string) string {
		t.Helper()
		r := mustRaw(t, v, v.rootToken, "POST", "sys/audit-hash/file", nil, map[string]any{"input": input})
		h, _ := r.data()["hash"].(string)
		require.Equal(t, 200, r.status, "sys/audit-hash/file: %s", r)
		require.True(t, strings.HasPrefix(h, "hmac-sha256:"), "sys/audit-hash/file: %s", r)
		return h
	}
	h := hashOf(e.emu.secret)
	assert.True(t, strings.Contains(string(auditText), `"secret_access_key":"`+h+`"`), "the audit log has no HMAC'd secret_access_key (%s): the config write was not audited as expected", h)
	var servedKey string
	for _, o := range outputs {
		var body struct {
			Data map[string]any `json:"data"`
		}
		if json.Unmarshal(o.body, &body) == nil {
			if k, ok := body.Data["private_key"].(string); ok && servedKey == "" && strings.Contains(k, "PRIVATE KEY") {
				servedKey = k
			}
		}
	}
	h = hashOf(servedKey)
	assert.True(t, strings.Contains(string(auditText), `"private_key":"`+h+`"`), "the audit log has no HMAC'd private_key (%s)", h)

	// Every HTTP answer and CLI output, minus the fields that hold a key.
	for _, o := range outputs {
		text := string(o.body)
		if len(o.keyFields) > 0 {
			var body map[string]any
			if json.Unmarshal(o.body, &body) == nil {
				if d, ok := body["data"].(map[string]any); ok {
					for _, f := range o.keyFields {
						delete(d, f)
					}
				}
				b, _ := json.Marshal(body)
				text = string(b)
			}
		}
		check(o.what, text)
		assert.False(t, strings.Contains(text, "PRIVATE KEY"), "%s holds \"PRIVATE KEY\" outside its key fields", o.what)
	}

	kinds := map[string]int{}
	for _, w := range needles {
		kinds[w]++
	}
	var ks []string
	for k, n := range kinds {
		ks = append(ks, fmt.Sprintf("%d x %s", n, k))
	}
	sort.Strings(ks)
	t.Logf("checked %d needles (%s; %d distinct private keys, %d key lines or scalars) against %d lines of Vault's log (%d of them the plugin's), %d audit entries, %d HTTP answers and CLI outputs",
		len(needles), strings.Join(ks, ", "), len(keyPEMs), keyLines, logLines, pluginLines, auditEntries, len(outputs))
}

// addKeyNeedles adds to needles what must never show of the key in
// keyPEM: each base64 line of its body that no public text holds, and the
// hex of its private scalar. It returns how many it added.
func addKeyNeedles(t *testing.T, keyPEM string, public []string, needles map[string]string) int {
	t.Helper()
	b, _ := pem.Decode([]byte(keyPEM))
	require.NotNil(t, b, "not a PEM key: %.40q", keyPEM)
	n := 0
	add := func(s string) {
		for _, p := range public {
			if strings.Contains(p, s) {
				return // public material, by chance on the same base64 phase
			}
		}
		needles[s] = "a private key (" + b.Type + ")"
		n++
	}
	for _, line := range strings.Split(string(pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes})), "\n") {
		if len(line) >= 24 && !strings.HasPrefix(line, "-----") {
			add(line)
		}
	}
	var scalar []byte
	var key any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		// The test's own hostile keys (mismatch fault) parse; anything
		// else is still covered by its lines.
		return n
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		scalar = k.D.Bytes()
	case *ecdsa.PrivateKey:
		if b, err := k.Bytes(); err == nil { // the scalar is what must not leak
			scalar = b
		}
	case ed25519.PrivateKey:
		scalar = k.Seed()
	}
	if len(scalar) >= 16 {
		add(hex.EncodeToString(scalar[:16]))
		add(strings.ToUpper(hex.EncodeToString(scalar[:16])))
	}
	return n
}
