package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConfig checks nhncert/config through a real Vault, on a mount of its
// own (the shared mount's config stays as it is): read before any write,
// the required secret, a full round trip that never returns the secret,
// HTTP 400 with a clear message for bad values (and nothing changed),
// partial updates, and delete.
func TestConfig(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault
	const m = "nhncert-config-test"
	require.NoError(t, e.enable(m))
	t.Cleanup(func() { v.cli(v.rootToken, "", "secrets", "disable", m) })

	t.Run("unconfigured", func(t *testing.T) {
		r := mustRaw(t, v, v.rootToken, "GET", m+"/config", nil, nil)
		assert.Equal(t, 404, r.status, "GET %s/config before any write: %s, want 404", m, r)
		c := v.cli(v.rootToken, "", "read", m+"/config")
		assert.Equal(t, 2, c.code, "vault read %s/config before any write: want exit 2 and \"No value found\": %s", m, c)
		assert.Contains(t, c.stdout+c.stderr, "No value found at "+m+"/config", "vault read %s/config before any write: want exit 2 and \"No value found\"", m)
		r = mustRaw(t, v, v.rootToken, "GET", m+"/certs/example.com", nil, nil)
		assert.Equal(t, 400, r.status, "read a certificate before the config is written: %s, want 400 saying it is not configured", r)
		assert.Contains(t, strings.Join(r.errors(), " "), "not configured", "read a certificate before the config is written: %s, want 400 saying it is not configured", r)
		r = mustRaw(t, v, v.rootToken, "LIST", m+"/certs", nil, nil)
		assert.Equal(t, 400, r.status, "list before the config is written: %s, want 400 saying it is not configured", r)
		assert.Contains(t, strings.Join(r.errors(), " "), "not configured", "list before the config is written: %s, want 400 saying it is not configured", r)
	})

	t.Run("first write needs the secret", func(t *testing.T) {
		r := mustRaw(t, v, v.rootToken, "POST", m+"/config", nil, map[string]any{
			"app_key": e.emu.appKey, "access_key_id": e.emu.accessKeyID,
			"endpoint": e.emu.url, "auth_endpoint": e.emu.url,
		})
		assert.Equal(t, 400, r.status, "first write without secret_access_key: %s, want 400 \"secret_access_key is required\"", r)
		assert.Contains(t, strings.Join(r.errors(), " "), "secret_access_key is required", "first write without secret_access_key: %s", r)
		r = mustRaw(t, v, v.rootToken, "GET", m+"/config", nil, nil)
		assert.Equal(t, 404, r.status, "a refused first write stored something: GET config: %s", r)
	})

	want := map[string]any{
		"app_key":         e.emu.appKey,
		"access_key_id":   e.emu.accessKeyID,
		"region":          "public",
		"api_version":     "v1.3",
		"endpoint":        e.emu.url,
		"auth_endpoint":   e.emu.url,
		"cache_ttl":       json.Number("3600"),
		"request_timeout": json.Number("30"),
	}
	// readConfig returns the contract's fields of a config read (the
	// plugin may return more; it must never return the secret).
	readConfig := func(t *testing.T) map[string]any {
		t.Helper()
		s, err := v.client.Logical().Read(m + "/config")
		require.NoError(t, err, "read %s/config", m)
		require.NotNil(t, s, "read %s/config: no secret", m)
		// The field names only: a value would be the secret.
		assert.NotContains(t, slices.Collect(maps.Keys(s.Data)), "secret_access_key", "config read returns secret_access_key")
		out := map[string]any{}
		for k := range want {
			out[k] = s.Data[k]
		}
		return out
	}

	t.Run("round trip", func(t *testing.T) {
		require.NoError(t, e.configure(m))
		assert.Equal(t, want, readConfig(t), "config read")
		// Every way of reading it: raw HTTP, the CLI's table and JSON.
		r := mustRaw(t, v, v.rootToken, "GET", m+"/config", nil, nil)
		assertNoSecret(t, e, "GET config (HTTP body)", string(r.body))
		for _, args := range [][]string{{"read", m + "/config"}, {"read", "-format=json", m + "/config"}} {
			out := mustCLI(t, v, args...)
			assertNoSecret(t, e, "vault "+strings.Join(args, " "), out)
			for _, f := range []string{"app_key", "access_key_id", "region", "api_version", "endpoint", "auth_endpoint", "cache_ttl", "request_timeout"} {
				assert.Contains(t, out, f, "vault %s does not show %s", strings.Join(args, " "), f)
			}
			assert.NotContains(t, out, "secret_access_key", "vault %s shows secret_access_key", strings.Join(args, " "))
		}
		// The config works: the secret was stored.
		r = mustRaw(t, v, v.rootToken, "LIST", m+"/certs", nil, nil)
		assert.Equal(t, 200, r.status, "list with the new config: %s", r)
	})

	t.Run("invalid values are HTTP 400", func(t *testing.T) {
		before := readConfig(t)
		for _, c := range []struct {
			field, value, msg string
		}{
			{"region", "mars", `unknown region "mars"`},
			{"api_version", "v9", "api_version"},
			{"endpoint", "not a url", "endpoint must be an http or https URL"},
			{"endpoint", "ftp://certmanager.example.com", "endpoint must be an http or https URL"},
			{"auth_endpoint", "https://", "auth_endpoint must name a host"},
			{"endpoint", "https://user:" + e.emu.secret + "@example.com", "endpoint must not carry credentials"},
			{"cache_ttl", "-5s", "cache_ttl"},
			{"cache_ttl", "-5s", "negative"},
			{"request_timeout", "-1s", "request_timeout"},
			{"request_timeout", "0", "request_timeout must be at least"},
			{"cache_ttl", "forever", "cache_ttl"},
		} {
			r := mustRaw(t, v, v.rootToken, "POST", m+"/config", nil, map[string]any{c.field: c.value})
			msg := strings.Join(r.errors(), " ")
			assert.Equal(t, 400, r.status, "write %s=%q: %s; want HTTP 400 with %q", c.field, c.value, r, c.msg)
			assert.Contains(t, msg, c.msg, "write %s=%q: %s; want HTTP 400 with %q", c.field, c.value, r, c.msg)
			assertNoSecret(t, e, fmt.Sprintf("the answer to %s=%q", c.field, c.value), string(r.body))
		}
		// The CLI shows the code and the message.
		c := v.cli(v.rootToken, "", "write", m+"/config", "region=mars")
		assert.Equal(t, 2, c.code, "vault write region=mars: want exit 2, \"Code: 400\" and the message: %s", c)
		for _, want := range []string{"Code: 400", "unknown region"} {
			assert.Contains(t, c.stderr, want, "vault write region=mars: want exit 2, \"Code: 400\" and the message")
		}
		assert.Equal(t, before, readConfig(t), "refused writes changed the config")
	})

	t.Run("partial update keeps the other values", func(t *testing.T) {
		mustCLI(t, v, "write", m+"/config", "cache_ttl=2h")
		w := map[string]any{}
		for k, val := range want {
			w[k] = val
		}
		w["cache_ttl"] = json.Number("7200")
		assert.Equal(t, w, readConfig(t), "after writing only cache_ttl=2h")
		mustCLI(t, v, "write", m+"/config", "request_timeout=45s")
		w["request_timeout"] = json.Number("45")
		assert.Equal(t, w, readConfig(t), "after writing only request_timeout=45s")
		// The stored secret is still used.
		r := mustRaw(t, v, v.rootToken, "LIST", m+"/certs", nil, nil)
		assert.Equal(t, 200, r.status, "list after partial updates: %s", r)
	})

	t.Run("delete", func(t *testing.T) {
		mustCLI(t, v, "delete", m+"/config")
		r := mustRaw(t, v, v.rootToken, "GET", m+"/config", nil, nil)
		assert.Equal(t, 404, r.status, "GET config after delete: %s, want 404", r)
		r = mustRaw(t, v, v.rootToken, "GET", m+"/certs/example.com", nil, nil)
		assert.Equal(t, 400, r.status, "read a certificate after the config was deleted: %s, want 400 not configured", r)
		assert.Contains(t, strings.Join(r.errors(), " "), "not configured", "read a certificate after the config was deleted: %s, want 400 not configured", r)
	})

	if !t.Failed() {
		// Not assert.NotContains: it would print the log and the secret.
		assert.False(t, strings.Contains(tail(v.logPath, 100000), e.emu.secret), "Vault's log (%s) contains the Secret Access Key", v.logPath)
	}
}
