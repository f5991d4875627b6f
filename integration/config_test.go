package integration

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
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
	if err := e.enable(m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.cli(v.rootToken, "", "secrets", "disable", m) })

	t.Run("unconfigured", func(t *testing.T) {
		r := mustRaw(t, v, v.rootToken, "GET", m+"/config", nil, nil)
		if r.status != 404 {
			t.Errorf("GET %s/config before any write: %s, want 404", m, r)
		}
		c := v.cli(v.rootToken, "", "read", m+"/config")
		if c.code != 2 || !strings.Contains(c.stdout+c.stderr, "No value found at "+m+"/config") {
			t.Errorf("vault read %s/config before any write: want exit 2 and \"No value found\": %s", m, c)
		}
		r = mustRaw(t, v, v.rootToken, "GET", m+"/certs/example.com", nil, nil)
		if r.status != 400 || !strings.Contains(strings.Join(r.errors(), " "), "not configured") {
			t.Errorf("read a certificate before the config is written: %s, want 400 saying it is not configured", r)
		}
		r = mustRaw(t, v, v.rootToken, "LIST", m+"/certs", nil, nil)
		if r.status != 400 || !strings.Contains(strings.Join(r.errors(), " "), "not configured") {
			t.Errorf("list before the config is written: %s, want 400 saying it is not configured", r)
		}
	})

	t.Run("first write needs the secret", func(t *testing.T) {
		r := mustRaw(t, v, v.rootToken, "POST", m+"/config", nil, map[string]any{
			"app_key": e.emu.appKey, "access_key_id": e.emu.accessKeyID,
			"endpoint": e.emu.url, "auth_endpoint": e.emu.url,
		})
		if r.status != 400 || !strings.Contains(strings.Join(r.errors(), " "), "secret_access_key is required") {
			t.Errorf("first write without secret_access_key: %s, want 400 \"secret_access_key is required\"", r)
		}
		if r := mustRaw(t, v, v.rootToken, "GET", m+"/config", nil, nil); r.status != 404 {
			t.Errorf("a refused first write stored something: GET config: %s", r)
		}
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
		if err != nil || s == nil {
			t.Fatalf("read %s/config: %v (secret %v)", m, err, s)
		}
		if _, ok := s.Data["secret_access_key"]; ok {
			t.Errorf("config read returns secret_access_key")
		}
		out := map[string]any{}
		for k := range want {
			out[k] = s.Data[k]
		}
		return out
	}

	t.Run("round trip", func(t *testing.T) {
		if err := e.configure(m); err != nil {
			t.Fatal(err)
		}
		got := readConfig(t)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("config read:\n got %v\nwant %v", got, want)
		}
		// Every way of reading it: raw HTTP, the CLI's table and JSON.
		r := mustRaw(t, v, v.rootToken, "GET", m+"/config", nil, nil)
		assertNoSecret(t, e, "GET config (HTTP body)", string(r.body))
		for _, args := range [][]string{{"read", m + "/config"}, {"read", "-format=json", m + "/config"}} {
			out := mustCLI(t, v, args...)
			assertNoSecret(t, e, "vault "+strings.Join(args, " "), out)
			for _, f := range []string{"app_key", "access_key_id", "region", "api_version", "endpoint", "auth_endpoint", "cache_ttl", "request_timeout"} {
				if !strings.Contains(out, f) {
					t.Errorf("vault %s does not show %s:\n%s", strings.Join(args, " "), f, out)
				}
			}
			if strings.Contains(out, "secret_access_key") {
				t.Errorf("vault %s shows secret_access_key:\n%s", strings.Join(args, " "), out)
			}
		}
		// The config works: the secret was stored.
		if r := mustRaw(t, v, v.rootToken, "LIST", m+"/certs", nil, nil); r.status != 200 {
			t.Errorf("list with the new config: %s", r)
		}
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
			if r.status != 400 || !strings.Contains(msg, c.msg) {
				t.Errorf("write %s=%q: %s; want HTTP 400 with %q", c.field, c.value, r, c.msg)
			}
			assertNoSecret(t, e, fmt.Sprintf("the answer to %s=%q", c.field, c.value), string(r.body))
		}
		// The CLI shows the code and the message.
		c := v.cli(v.rootToken, "", "write", m+"/config", "region=mars")
		if c.code != 2 || !strings.Contains(c.stderr, "Code: 400") || !strings.Contains(c.stderr, "unknown region") {
			t.Errorf("vault write region=mars: want exit 2, \"Code: 400\" and the message: %s", c)
		}
		if after := readConfig(t); !reflect.DeepEqual(after, before) {
			t.Errorf("refused writes changed the config:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("partial update keeps the other values", func(t *testing.T) {
		mustCLI(t, v, "write", m+"/config", "cache_ttl=2h")
		got := readConfig(t)
		w := map[string]any{}
		for k, val := range want {
			w[k] = val
		}
		w["cache_ttl"] = json.Number("7200")
		if !reflect.DeepEqual(got, w) {
			t.Errorf("after writing only cache_ttl=2h:\n got %v\nwant %v", got, w)
		}
		mustCLI(t, v, "write", m+"/config", "request_timeout=45s")
		w["request_timeout"] = json.Number("45")
		if got := readConfig(t); !reflect.DeepEqual(got, w) {
			t.Errorf("after writing only request_timeout=45s:\n got %v\nwant %v", got, w)
		}
		// The stored secret is still used.
		if r := mustRaw(t, v, v.rootToken, "LIST", m+"/certs", nil, nil); r.status != 200 {
			t.Errorf("list after partial updates: %s", r)
		}
	})

	t.Run("delete", func(t *testing.T) {
		mustCLI(t, v, "delete", m+"/config")
		if r := mustRaw(t, v, v.rootToken, "GET", m+"/config", nil, nil); r.status != 404 {
			t.Errorf("GET config after delete: %s, want 404", r)
		}
		r := mustRaw(t, v, v.rootToken, "GET", m+"/certs/example.com", nil, nil)
		if r.status != 400 || !strings.Contains(strings.Join(r.errors(), " "), "not configured") {
			t.Errorf("read a certificate after the config was deleted: %s, want 400 not configured", r)
		}
	})

	if !t.Failed() {
		if strings.Contains(tail(v.logPath, 100000), e.emu.secret) {
			t.Errorf("Vault's log (%s) contains the Secret Access Key", v.logPath)
		}
	}
}
