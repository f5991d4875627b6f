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
	if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, v, "policy", "write", name, file)
	out := mustCLI(t, v, append([]string{"token", "create", "-policy=" + name, "-ttl=1h", "-format=json"}, createArgs...)...)
	var tok struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Auth.ClientToken == "" {
		t.Fatalf("vault token create: %v\n%s", err, out)
	}
	return tok.Auth.ClientToken
}

// mustCLI runs the vault CLI with the root token and fails the test unless
// it exits 0; it returns stdout.
func mustCLI(t *testing.T, v *vaultServer, args ...string) string {
	t.Helper()
	r := v.cli(v.rootToken, "", args...)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	return r.stdout
}

// mustRaw is raw that fails the test on a transport error.
func mustRaw(t *testing.T, v *vaultServer, token, method, rawPath string, query url.Values, body any) rawResponse {
	t.Helper()
	r, err := v.raw(token, method, rawPath, query, body)
	if err != nil {
		t.Fatalf("%s /v1/%s: %v", method, rawPath, err)
	}
	return r
}

// assertNoSecret fails the test if the emulator's Secret Access Key shows
// up in s.
func assertNoSecret(t *testing.T, e *env, what, s string) {
	t.Helper()
	if strings.Contains(s, e.emu.secret) {
		t.Errorf("%s contains the Secret Access Key", what)
	}
}
