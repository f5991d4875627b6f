package integration

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestACL checks that Vault policies apply per certificate: a token that
// may read only nhncert/certs/example.com reads it, and gets 403 on any
// other certificate (the wildcard one too), on the config and on LIST;
// denied requests never reach NHN.
func TestACL(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault
	token := tokenWithPolicy(t, v, "nhncert-example-only", `path "`+mount+`/certs/example.com" {
  capabilities = ["read"]
}
`, "-no-default-policy")

	c := v.cli(token, "", "read", "-field=common_name", mount+"/certs/example.com")
	if c.code != 0 || strings.TrimSpace(c.stdout) != "example.com" {
		t.Errorf("the token reads example.com: %s", c)
	}
	if s, err := v.clientWithToken(t, token).Logical().Read(mount + "/certs/example.com"); err != nil || s == nil || s.Data["private_key"] == "" {
		t.Errorf("API read with the token: %v %v", s, err)
	}

	before := e.emu.stats(t)
	for _, req := range []struct{ method, path string }{
		{"GET", mount + "/certs/api.example.com"},
		{"GET", mount + "/certs/*.example.com"},
		{"GET", mount + "/certs/example.com.evil"},
		{"GET", mount + "/config"},
		{"POST", mount + "/config"},
		{"DELETE", mount + "/config"},
		{"LIST", mount + "/certs"},
	} {
		var body any
		if req.method == "POST" {
			body = map[string]any{"cache_ttl": "1s"}
		}
		r := mustRaw(t, v, token, req.method, req.path, nil, body)
		if r.status != 403 || !strings.Contains(strings.Join(r.errors(), " "), "permission denied") {
			t.Errorf("%s /v1/%s with the example.com-only token: %s, want 403 permission denied", req.method, req.path, r)
		}
	}
	r := mustRaw(t, v, token, "GET", mount+"/certs", url.Values{"list": {"true"}}, nil)
	if r.status != 403 {
		t.Errorf("GET ?list=true with the example.com-only token: %s, want 403", r)
	}
	for _, args := range [][]string{
		{"list", mount + "/certs"},
		{"read", mount + "/certs/api.example.com"},
		{"read", mount + "/config"},
		// Vault cleans the path (and the CLI follows the redirect): the
		// policy of the resulting path applies.
		{"read", mount + "/certs/example.com/../../config"},
	} {
		c := v.cli(token, "", args...)
		if c.code == 0 || !strings.Contains(c.stderr, "Code: 403") || !strings.Contains(c.stderr, "permission denied") {
			t.Errorf("vault %s with the example.com-only token: %s, want a 403", strings.Join(args, " "), c)
		}
	}
	after := e.emu.stats(t)
	if after.ListCalls != before.ListCalls || after.FileCallsByName["api.example.com"] != before.FileCallsByName["api.example.com"] ||
		after.FileCallsByName["*.example.com"] != before.FileCallsByName["*.example.com"] {
		t.Errorf("denied requests reached the emulator: before %+v after %+v", before, after)
	}
	// The root token still reads the config: the denied writes changed nothing.
	if s, err := v.client.Logical().Read(mount + "/config"); err != nil || s == nil || s.Data["cache_ttl"] == nil {
		t.Errorf("config after denied writes: %v %v", s, err)
	} else if s.Data["cache_ttl"].(json.Number) != "3600" {
		t.Errorf("a denied write changed cache_ttl to %v", s.Data["cache_ttl"])
	}
}
