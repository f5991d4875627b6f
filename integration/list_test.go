package integration

import (
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestList checks `vault list nhncert/certs` with 40+ certificates behind
// an emulator that answers at most 10 per page: every name, sorted, with
// key_info as NHN gives it, and the status parameter through HTTP.
func TestList(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault
	ctx := ctxT(t)
	require.NoError(t, e.emu.admin.Seed(ctx, "list", 37))
	certs, err := e.emu.admin.Certs(ctx)
	require.NoError(t, err)
	byName := map[string]emulator.AdminCert{}
	var all []string
	for _, c := range certs {
		byName[c.Name] = c
		all = append(all, c.Name)
	}
	sort.Strings(all)
	require.GreaterOrEqual(t, len(all), 40, "the emulator's certificates; want 40+")

	require.NoError(t, e.emu.admin.ResetStats(ctx))
	out := mustCLI(t, v, "list", "-format=json", mount+"/certs")
	var cliKeys []string
	require.NoError(t, json.Unmarshal([]byte(out), &cliKeys), "vault list -format=json:\n%s", out)
	assert.GreaterOrEqual(t, e.emu.stats(t).ListCalls, int64((len(all)+9)/10),
		"one vault list: upstream list calls; with %d certificates and pages of 10 it must page", len(all))
	assert.True(t, sort.StringsAreSorted(cliKeys), "vault list is not sorted: %v", cliKeys)
	for _, n := range all {
		if n != "expired.example.com" {
			assert.Contains(t, cliKeys, n, "vault list misses %q", n)
		}
	}
	assert.NotContains(t, cliKeys, "expired.example.com", "vault list (default status unexpired) shows expired.example.com")
	assert.Equal(t, len(all)-1, len(cliKeys), "vault list: names; want all but the expired one")

	t.Run("plain table", func(t *testing.T) {
		out := mustCLI(t, v, "list", mount+"/certs")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.GreaterOrEqual(t, len(lines), 3, "vault list output:\n%s", out)
		require.Equal(t, "Keys", strings.TrimSpace(lines[0]), "vault list output:\n%s", out)
		assert.Equal(t, cliKeys, lines[2:], "vault list table vs -format=json")
	})

	t.Run("key_info", func(t *testing.T) {
		keys, info := listKeys(t, mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", nil, nil))
		assert.Equal(t, cliKeys, keys, "LIST over HTTP vs the CLI")
		for _, k := range keys {
			ki, ok := info[k]
			if !assert.True(t, ok, "key_info has no entry for %q", k) {
				continue
			}
			c := byName[k]
			want := map[string]any{
				"authority":           c.Authority,
				"domains":             toAnySlice(c.Domains),
				"signature_algorithm": c.SignatureAlgorithm,
				"file_creation_date":  c.FileCreationDate,
				"expiration_date":     c.ExpirationDate,
			}
			got := map[string]any{}
			for f := range want {
				got[f] = ki[f]
			}
			assert.Equal(t, want, got, "key_info[%q]", k)
		}
		assert.Equal(t, len(keys), len(info), "key_info entries for %d keys", len(keys))
		// The CLI shows them too.
		out := mustCLI(t, v, "list", "-detailed", mount+"/certs")
		for _, s := range []string{"authority", "domains", "signature_algorithm", "file_creation_date", "expiration_date", "SHA256withECDSA", "list00036.example.com"} {
			assert.Contains(t, out, s, "vault list -detailed does not show %q", s)
		}
	})

	t.Run("status", func(t *testing.T) {
		// LIST with the parameter in the query string (as `curl -X LIST`
		// sends it), and GET ?list=true (as the Go API client sends it).
		allKeys, _ := listKeys(t, mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"status": {"all"}}, nil))
		assert.Equal(t, all, allKeys, "LIST ?status=all")
		upper, _ := listKeys(t, mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"status": {"ALL"}}, nil))
		assert.Equal(t, all, upper, "LIST ?status=ALL (case-insensitive)")
		expired, info := listKeys(t, mustRaw(t, v, v.rootToken, "GET", mount+"/certs", url.Values{"list": {"true"}, "status": {"expired"}}, nil))
		assert.Equal(t, []string{"expired.example.com"}, expired, "GET ?list=true&status=expired")
		if ki := info["expired.example.com"]; assert.NotNil(t, ki, "key_info of expired.example.com") {
			assert.Equal(t, byName["expired.example.com"].ExpirationDate, ki["expiration_date"], "key_info of expired.example.com: %v", ki)
		}
		unexpired, _ := listKeys(t, mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"status": {"Unexpired"}}, nil))
		assert.Equal(t, cliKeys, unexpired, "LIST ?status=Unexpired differs from the default list")
		// The API client has no List with parameters; a read with
		// list=true is the same request.
		s, err := v.client.Logical().ReadWithData(mount+"/certs", map[string][]string{"list": {"true"}, "status": {"all"}})
		require.NoError(t, err, "api ReadWithData list=true status=all")
		require.NotNil(t, s, "api ReadWithData list=true status=all")
		assert.Len(t, s.Data["keys"], len(all), "api ReadWithData list=true status=all: keys")
		r := mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"status": {"bogus"}}, nil)
		assert.Equal(t, 400, r.status, "LIST ?status=bogus: %s, want 400 naming status", r)
		assert.Contains(t, strings.Join(r.errors(), " "), "status", "LIST ?status=bogus: %s, want 400 naming status", r)
	})

	t.Run("v1.1 lists no domains", func(t *testing.T) {
		const m = "nhncert-v11"
		require.NoError(t, e.enable(m))
		t.Cleanup(func() { v.cli(v.rootToken, "", "secrets", "disable", m) })
		require.NoError(t, e.configure(m, "api_version=v1.1"))
		keys, info := listKeys(t, mustRaw(t, v, v.rootToken, "LIST", m+"/certs", nil, nil))
		assert.Equal(t, cliKeys, keys, "v1.1 list differs from v1.3")
		for _, k := range keys {
			d := info[k]["domains"]
			if assert.IsType(t, []any{}, d, "v1.1 key_info[%q].domains = %#v; want an empty list", k, d) {
				assert.Empty(t, d, "v1.1 key_info[%q].domains; want an empty list", k)
			}
		}
		s, err := v.client.Logical().Read(m + "/certs/example.com")
		if assert.NoError(t, err, "read through v1.1") && assert.NotNil(t, s, "read through v1.1") {
			assert.Equal(t, "example.com", s.Data["common_name"], "read through v1.1: %v", s)
		}
	})
}

func toAnySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
