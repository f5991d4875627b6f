package integration

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// ctxT is a context bounded by 60s for one admin or API call.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// tokenWithPolicy writes policy (HCL) under name and returns a new token
// with it, valid for 1 hour; createArgs go to "vault token create" (such
// as -no-default-policy).
func tokenWithPolicy(t *testing.T, v *vaultServer, name, policy string, createArgs ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name+".hcl")
	require.NoError(t, os.WriteFile(file, []byte(policy), 0o600))
	mustCLI(t, v, "policy", "write", name, file)
	out := mustCLI(t, v, append([]string{"token", "create", "-policy=" + name, "-ttl=1h", "-format=json"}, createArgs...)...)
	var tok struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &tok), "vault token create:\n%s", out)
	require.NotEmpty(t, tok.Auth.ClientToken, "vault token create:\n%s", out)
	return tok.Auth.ClientToken
}

// mustCLI runs the vault CLI with the root token and fails the test unless
// it exits 0; it returns stdout.
func mustCLI(t *testing.T, v *vaultServer, args ...string) string {
	t.Helper()
	r := v.cli(v.rootToken, "", args...)
	require.Equal(t, 0, r.code, "%s", r)
	return r.stdout
}

// mustRaw is raw that fails the test on a transport error.
func mustRaw(t *testing.T, v *vaultServer, token, method, rawPath string, query url.Values, body any) rawResponse {
	t.Helper()
	r, err := v.raw(token, method, rawPath, query, body)
	require.NoError(t, err, "%s /v1/%s", method, rawPath)
	return r
}

// assertNoSecret fails the test if the emulator's Secret Access Key shows
// up in s. (Not assert.NotContains: its message would show the secret.)
func assertNoSecret(t *testing.T, e *env, what, s string) {
	t.Helper()
	assert.False(t, strings.Contains(s, e.emu.secret), "%s contains the Secret Access Key", what)
}

// timedRaw is mustRaw that also returns how long the answer took.
func timedRaw(t *testing.T, v *vaultServer, method, rawPath string, query url.Values) (rawResponse, time.Duration) {
	t.Helper()
	start := time.Now()
	r := mustRaw(t, v, v.rootToken, method, rawPath, query, nil)
	return r, time.Since(start)
}

// waitUntil waits until the clock passes when (a known instant such as
// the end of a cache_ttl), at most bound.
func waitUntil(t *testing.T, when time.Time, bound time.Duration) {
	t.Helper()
	require.LessOrEqual(t, time.Until(when), bound, "waitUntil: %s is more than the bound %s away", when.Format(time.RFC3339Nano), bound)
	require.NoError(t, poll(bound+time.Second, "the clock to pass "+when.Format(time.RFC3339Nano), nil, func() (bool, error) {
		return time.Now().After(when), nil
	}))
}

func str(t *testing.T, d map[string]any, k string) string {
	t.Helper()
	s, ok := d[k].(string)
	require.True(t, ok, "field %s is %T (%v), want a string", k, d[k], d[k])
	return s
}

func strList(t *testing.T, d map[string]any, k string) []string {
	t.Helper()
	l, ok := d[k].([]any)
	require.True(t, ok, "field %s is %T (%v), want a list", k, d[k], d[k])
	out := make([]string, len(l))
	for i, x := range l {
		out[i], ok = x.(string)
		require.True(t, ok, "field %s[%d] is %T", k, i, x)
	}
	return out
}

// readCert reads mount/certs/name through the API client with query
// parameters and fails the test on error.
func readCert(t *testing.T, v *vaultServer, name string, query map[string][]string) *api.Secret {
	t.Helper()
	s, err := v.client.Logical().ReadWithData(mount+"/certs/"+name, query)
	require.NoError(t, err, "read %s/certs/%s %v", mount, name, query)
	require.NotNil(t, s, "read %s/certs/%s %v: no secret", mount, name, query)
	return s
}

// listKeys decodes a LIST answer's keys and key_info.
func listKeys(t *testing.T, r rawResponse) ([]string, map[string]map[string]any) {
	t.Helper()
	require.Equal(t, 200, r.status, "list: %s", r)
	var body struct {
		Data struct {
			Keys    []string                  `json:"keys"`
			KeyInfo map[string]map[string]any `json:"key_info"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(r.body, &body), "list: decoding %s", r)
	return body.Data.Keys, body.Data.KeyInfo
}

// timedRawBody sends body as JSON with the root token.
func timedRawBody(t *testing.T, v *vaultServer, method, rawPath string, body any) (rawResponse, time.Duration) {
	t.Helper()
	start := time.Now()
	r := mustRaw(t, v, v.rootToken, method, rawPath, nil, body)
	return r, time.Since(start)
}

// timedRawBytes sends body as it is, with the root token.
func timedRawBytes(t *testing.T, v *vaultServer, method, rawPath string, body []byte) (rawResponse, time.Duration) {
	t.Helper()
	start := time.Now()
	r, err := v.rawBytes(v.rootToken, method, rawPath, body)
	require.NoError(t, err, "%s /v1/%s", method, rawPath)
	return r, time.Since(start)
}

// is4xx reports whether status is a client error (400-499).
func is4xx(status int) bool { return status >= 400 && status <= 499 }

// emulatorCerts returns the certificates the emulator holds now, by name.
func emulatorCerts(t *testing.T, e *env) map[string]emulator.AdminCert {
	t.Helper()
	certs, err := e.emu.admin.Certs(ctxT(t))
	require.NoError(t, err)
	byName := make(map[string]emulator.AdminCert, len(certs))
	for _, c := range certs {
		byName[c.Name] = c
	}
	return byName
}

// emulatorSerial returns the serial of the certificate the emulator holds
// under name.
func emulatorSerial(t *testing.T, e *env, name string) string {
	t.Helper()
	c, ok := emulatorCerts(t, e)[name]
	require.True(t, ok, "the emulator holds no certificate %q", name)
	return c.Serial
}
