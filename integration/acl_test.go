package integration

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// certReader returns a token (without the default policy) whose policy,
// named policy, grants read on the one certificate name, after checking
// that `vault read -field=common_name` with it answers wantCN.
func certReader(t *testing.T, v *vaultServer, policy, name, wantCN string) string {
	t.Helper()
	token := tokenWithPolicy(t, v, policy, `path "`+mount+`/certs/`+name+`" {
  capabilities = ["read"]
}
`, "-no-default-policy")
	c := v.cli(token, "", "read", "-field=common_name", mount+"/certs/"+name)
	assert.Equal(t, 0, c.code, "the token reads %s: %s", name, c)
	assert.Equal(t, wantCN, strings.TrimSpace(c.stdout), "the token reads %s: %s", name, c)
	return token
}

// TestACL checks that Vault policies apply per certificate: a token that
// may read only nhncert/certs/example.com reads it, and gets 403 on any
// other certificate (the wildcard one too), on the config and on LIST;
// denied requests never reach NHN.
func TestACL(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault
	token := certReader(t, v, "nhncert-example-only", "example.com", "example.com")
	s, err := v.clientWithToken(t, token).Logical().Read(mount + "/certs/example.com")
	if assert.NoError(t, err, "API read with the token") && assert.NotNil(t, s, "API read with the token") {
		key, _ := s.Data["private_key"].(string)
		assert.True(t, strings.HasPrefix(key, "-----BEGIN ") && strings.Contains(key, "PRIVATE KEY-----"), "API read with the token: no PEM private_key (not printed)")
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
		assert.Equal(t, 403, r.status, "%s /v1/%s with the example.com-only token: %s, want 403 permission denied", req.method, req.path, r)
		assert.Contains(t, strings.Join(r.errors(), " "), "permission denied", "%s /v1/%s with the example.com-only token: %s, want 403 permission denied", req.method, req.path, r)
	}
	r := mustRaw(t, v, token, "GET", mount+"/certs", url.Values{"list": {"true"}}, nil)
	assert.Equal(t, 403, r.status, "GET ?list=true with the example.com-only token: %s, want 403", r)
	for _, args := range [][]string{
		{"list", mount + "/certs"},
		{"read", mount + "/certs/api.example.com"},
		{"read", mount + "/config"},
		// Vault cleans the path (and the CLI follows the redirect): the
		// policy of the resulting path applies.
		{"read", mount + "/certs/example.com/../../config"},
	} {
		c := v.cli(token, "", args...)
		assert.NotEqual(t, 0, c.code, "vault %s with the example.com-only token: %s, want a 403", strings.Join(args, " "), c)
		assert.Contains(t, c.stderr, "Code: 403", "vault %s with the example.com-only token, want a 403", strings.Join(args, " "))
		assert.Contains(t, c.stderr, "permission denied", "vault %s with the example.com-only token, want a 403", strings.Join(args, " "))
	}
	after := e.emu.stats(t)
	assert.Equal(t, before.ListCalls, after.ListCalls, "denied requests reached the emulator: before %+v after %+v", before, after)
	for _, n := range []string{"api.example.com", "*.example.com"} {
		assert.Equal(t, before.FileCallsByName[n], after.FileCallsByName[n], "denied requests reached the emulator: before %+v after %+v", before, after)
	}
	// The root token still reads the config: the denied writes changed nothing.
	s, err = v.client.Logical().Read(mount + "/config")
	if assert.NoError(t, err, "config after denied writes") && assert.NotNil(t, s, "config after denied writes") {
		assert.Equal(t, json.Number("3600"), s.Data["cache_ttl"], "a denied write changed cache_ttl")
	}
}
