package nhncert

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

func TestConfigRoundTripWithoutSecret(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "90m"})

	resp, err := h.request(logical.ReadOperation, "config", nil)
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"app_key":          testAppKey,
		"access_key_id":    testKeyID,
		"hosts_wildcards":  true,
		"region":           "public",
		"api_version":      "v1.3",
		"endpoint":         h.srv.URL,
		"auth_endpoint":    h.srv.URL,
		"cache_ttl":        int64(5400),
		"request_timeout":  int64(10),
		"refresh_interval": int64(300),
	}, resp.Data)
	h.requireNoSecrets("config read", stringify(resp.Data))

	h.requireSealWrapped("config")
}

func TestConfigDefaultsPerRegion(t *testing.T) {
	h := newHarness(t)
	resp, err := h.request(logical.UpdateOperation, "config", map[string]any{
		"app_key": "a", "access_key_id": "b", "secret_access_key": "c",
	})
	require.NoError(t, err)
	require.Nil(t, resp)
	resp, _ = h.request(logical.ReadOperation, "config", nil)
	require.Equal(t, "https://certmanager.api.nhncloudservice.com", resp.Data["endpoint"])
	require.Equal(t, "https://oauth.api.nhncloudservice.com", resp.Data["auth_endpoint"])
	require.Equal(t, "v1.3", resp.Data["api_version"])
	require.Equal(t, int64(3600), resp.Data["cache_ttl"])
	require.Equal(t, int64(30), resp.Data["request_timeout"])

	// Switching the region moves the defaults with it.
	_, err = h.request(logical.UpdateOperation, "config", map[string]any{"region": "GOV"})
	require.NoError(t, err)
	resp, _ = h.request(logical.ReadOperation, "config", nil)
	require.Equal(t, "gov", resp.Data["region"])
	require.Equal(t, "https://certmanager.api.gov-nhncloudservice.com", resp.Data["endpoint"])
	require.Equal(t, "https://oauth.api.gov-nhncloudservice.com", resp.Data["auth_endpoint"])
	require.Equal(t, "v1.1", resp.Data["api_version"])
}

func TestConfigPartialUpdateKeepsValues(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "10m"})
	_, err := h.request(logical.UpdateOperation, "config", map[string]any{"request_timeout": "5s"})
	require.NoError(t, err)
	resp, _ := h.request(logical.ReadOperation, "config", nil)
	require.Equal(t, int64(600), resp.Data["cache_ttl"])
	require.Equal(t, int64(5), resp.Data["request_timeout"])
	require.Equal(t, testAppKey, resp.Data["app_key"])

	// The secret was kept too: reads still authenticate.
	h.cached("example.com")
}

func TestConfigRejectsBadInput(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name string
		data map[string]any
		want string
	}{
		{"missing app_key", map[string]any{"access_key_id": "a", "secret_access_key": "b"}, "app_key is required"},
		{"missing access_key_id", map[string]any{"app_key": "a", "secret_access_key": "b"}, "access_key_id is required"},
		{"missing secret", map[string]any{"app_key": "a", "access_key_id": "b"}, "secret_access_key is required"},
		{"unknown region", full(map[string]any{"region": "mars"}), `unknown region "mars"`},
		{"unknown api version", full(map[string]any{"api_version": "v2"}), `unknown api_version "v2"`},
		{"bad url", full(map[string]any{"endpoint": "://nope"}), "endpoint is not a valid URL"},
		{"no scheme", full(map[string]any{"endpoint": "certmanager.example.com"}), "endpoint must be an http or https URL"},
		{"ftp scheme", full(map[string]any{"auth_endpoint": "ftp://example.com"}), "auth_endpoint must be an http or https URL"},
		{"file scheme", full(map[string]any{"endpoint": "file:///etc/passwd"}), "endpoint must be an http or https URL"},
		{"credentials in url", full(map[string]any{"endpoint": "https://user:hunter2@example.com"}), "must not carry credentials"},
		{"query in url", full(map[string]any{"endpoint": "https://example.com/?a=b"}), "without query"},
		{"empty query in url", full(map[string]any{"endpoint": "https://example.com/?"}), "without query"},
		{"empty fragment in url", full(map[string]any{"auth_endpoint": "https://example.com/#"}), "without query"},
		{"negative ttl", full(map[string]any{"cache_ttl": "-1h"}), "negative"},
		{"huge ttl", full(map[string]any{"cache_ttl": "100000h"}), "cache_ttl must be at most"},
		{"zero timeout", full(map[string]any{"request_timeout": "0s"}), "request_timeout must be at least"},
		{"huge timeout", full(map[string]any{"request_timeout": "2h"}), "request_timeout must be at most"},
		{"negative refresh", full(map[string]any{"refresh_interval": "-1m"}), "negative"},
		{"huge refresh", full(map[string]any{"refresh_interval": "48h"}), "refresh_interval must be at most"},
		{"ttl not a duration", full(map[string]any{"cache_ttl": "soon"}), "cache_ttl"},
		{"app_key wrong type", full(map[string]any{"app_key": []any{"x"}}), "app_key"},
		{"huge app key", full(map[string]any{"app_key": strings.Repeat("a", 5000)}), "app_key is 5000 bytes long"},
		{"newline in secret", full(map[string]any{"secret_access_key": "a\nb"}), "secret_access_key must not contain line breaks"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := h.request(logical.UpdateOperation, "config", c.data)
			if err == nil {
				require.NotNil(t, resp)
				require.True(t, resp.IsError(), "want an error response, got %v", resp)
				err = resp.Error()
			} else {
				require.ErrorIs(t, err, logical.ErrInvalidRequest)
			}
			require.Contains(t, err.Error(), c.want)
			require.NotContains(t, err.Error(), "hunter2")
			// Nothing was written.
			cfg, rerr := readConfig(context.Background(), h.storage)
			require.NoError(t, rerr)
			require.Nil(t, cfg)
		})
	}
}

func TestConfigWarnsOnPlainHTTPToRemoteHost(t *testing.T) {
	h := newHarness(t)
	resp, err := h.request(logical.UpdateOperation, "config", full(map[string]any{"endpoint": "http://certmanager.example.com"}))
	require.NoError(t, err)
	require.NotNil(t, resp)
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "plain http")
}

func TestConfigIdentityChangeDropsCache(t *testing.T) {
	h := configuredHarness(t, nil)
	h.cached("example.com")
	require.Len(t, h.cacheKeys(), 1)

	// A change that does not touch the upstream identity keeps the cache.
	_, err := h.request(logical.UpdateOperation, "config", map[string]any{"cache_ttl": "2h", "request_timeout": "3s"})
	require.NoError(t, err)
	require.Len(t, h.cacheKeys(), 1)
	h.read("example.com", nil)
	require.EqualValues(t, 1, h.fileCalls("example.com"))

	for _, change := range []map[string]any{
		{"secret_access_key": testSecret}, // rewriting the same secret changes nothing
		{"access_key_id": testKeyID},
	} {
		_, err = h.request(logical.UpdateOperation, "config", change)
		require.NoError(t, err)
		require.Len(t, h.cacheKeys(), 1)
	}

}

// TestConfigEachIdentityFieldDropsCache changes one identity field at a
// time, each from a fresh mount with a cached certificate, so that no case
// leans on what an earlier one left in the config. The config read after
// the change shows that only the field named changed in effect.
func TestConfigEachIdentityFieldDropsCache(t *testing.T) {
	for _, c := range []struct {
		name   string
		base   map[string]any // written (with the harness's config) first
		change func(h *harness) map[string]any
		effect map[string]any // what the config read says afterwards
	}{
		{name: "app_key", change: func(*harness) map[string]any { return map[string]any{"app_key": "other-app"} },
			effect: map[string]any{"app_key": "other-app", "api_version": "v1.3", "region": "public"}},
		{name: "endpoint", change: func(h *harness) map[string]any {
			return map[string]any{"endpoint": strings.Replace(h.srv.URL, "127.0.0.1", "localhost", 1)}
		}, effect: map[string]any{"api_version": "v1.3", "region": "public"}},
		{name: "api_version", change: func(*harness) map[string]any { return map[string]any{"api_version": "v1.1"} },
			effect: map[string]any{"api_version": "v1.1", "region": "public"}},
		// The API version is pinned, the endpoints are explicit: the region
		// is the only thing that changes.
		{name: "region alone", base: map[string]any{"api_version": "v1.1"},
			change: func(*harness) map[string]any { return map[string]any{"region": "gov"} },
			effect: map[string]any{"api_version": "v1.1", "region": "gov"}},
		// The region's default API version moves with it.
		{name: "region with its default API version",
			change: func(*harness) map[string]any { return map[string]any{"region": "gov"} },
			effect: map[string]any{"api_version": "v1.1", "region": "gov"}},
		{name: "access_key_id", change: func(*harness) map[string]any { return map[string]any{"access_key_id": "other-id"} },
			effect: map[string]any{"access_key_id": "other-id", "api_version": "v1.3", "region": "public"}},
		{name: "secret_access_key", change: func(*harness) map[string]any { return map[string]any{"secret_access_key": "rotated"} },
			effect: map[string]any{"api_version": "v1.3", "region": "public"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := configuredHarness(t, c.base)
			h.cached("example.com")
			require.Len(t, h.cacheKeys(), 1)
			before, err := h.request(logical.ReadOperation, "config", nil)
			require.NoError(t, err)

			_, err = h.request(logical.UpdateOperation, "config", c.change(h))
			require.NoError(t, err)
			require.Empty(t, h.cacheKeys(), "changing %s must drop the cache", c.name)

			after, err := h.request(logical.ReadOperation, "config", nil)
			require.NoError(t, err)
			want := maps.Clone(before.Data)
			maps.Copy(want, c.effect)
			if ep, ok := c.change(h)["endpoint"]; ok {
				want["endpoint"] = ep
			}
			require.Equal(t, want, after.Data)
		})
	}
}

func TestConfigDeleteDropsCache(t *testing.T) {
	h := configuredHarness(t, nil)
	h.cached("example.com")
	require.Len(t, h.cacheKeys(), 1)

	resp, err := h.request(logical.DeleteOperation, "config", nil)
	require.NoError(t, err)
	require.Nil(t, resp)
	require.Empty(t, h.cacheKeys())
	require.Zero(t, h.b.cache.memoryLen())
	resp, _ = h.request(logical.ReadOperation, "certs/example.com", nil)
	require.Contains(t, resp.Error().Error(), "not configured")
}

func TestInvalidateConfigResetsOtherNode(t *testing.T) {
	h := configuredHarness(t, nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	other := h.newBackend(h.storage) // a standby sharing the storage
	_, err := h.requestOn(other, h.storage, logical.ReadOperation, "certs/example.com", nil)
	require.NoError(t, err)

	// The active node points the config elsewhere; the standby hears of it
	// through Invalidate and must not keep the old client or cache.
	_, err = h.request(logical.UpdateOperation, "config", map[string]any{"app_key": "unknown-app"})
	require.NoError(t, err)
	other.invalidate(context.Background(), "config")
	resp, err := h.requestOn(other, h.storage, logical.ReadOperation, "certs/example.com", nil)
	require.Error(t, err)
	require.Nil(t, resp)
	require.Contains(t, err.Error(), "HTTP 403")
}

// full returns a complete first-write config with overrides.
func full(over map[string]any) map[string]any {
	m := map[string]any{"app_key": "a", "access_key_id": "b", "secret_access_key": "c"}
	for k, v := range over {
		m[k] = v
	}
	return m
}

func TestConfigRefreshInterval(t *testing.T) {
	h := configuredHarness(t, map[string]any{"refresh_interval": "0"})
	resp, _ := h.request(logical.ReadOperation, "config", nil)
	require.Equal(t, int64(0), resp.Data["refresh_interval"], "0 turns it off")

	resp, err := h.request(logical.UpdateOperation, "config", map[string]any{"refresh_interval": "45m"})
	require.NoError(t, err)
	require.NotNil(t, resp)
	require.Contains(t, resp.Warnings[0], "refresh_interval is more than half of cache_ttl")
	resp, _ = h.request(logical.ReadOperation, "config", nil)
	require.Equal(t, int64(2700), resp.Data["refresh_interval"])
}
