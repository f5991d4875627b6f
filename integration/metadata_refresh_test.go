package integration

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetadataPolicy: a token that may read nhncert/metadata/* only gets a
// certificate's public parts and cache state, never its private key.
func TestMetadataPolicy(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault
	token := tokenWithPolicy(t, v, "nhncert-metadata-only", `path "`+mount+`/metadata/*" {
  capabilities = ["read"]
}
`, "-no-default-policy")

	for _, name := range []string{"example.com", "*.example.com"} {
		r := mustRaw(t, v, token, "GET", mount+"/metadata/"+name, nil, nil)
		require.Equal(t, 200, r.status, "metadata/%s with the metadata-only token: %s", name, r)
		d := r.data()
		for _, f := range []string{"certificate", "issuing_ca", "ca_chain", "serial_number", "fingerprint_sha256", "cached_at", "cache_expires_at", "not_after"} {
			assert.Contains(t, d, f, "metadata/%s lacks %s: %s", name, f, r)
		}
		assert.NotContains(t, d, "private_key", "metadata/%s holds the private key: %s", name, r)
		assert.NotContains(t, string(r.body), "PRIVATE KEY", "metadata/%s holds the private key", name)
		assert.Equal(t, name, d["common_name"], "metadata/%s common_name", name)
	}
	c := v.cli(token, "", "read", "-field=fingerprint_sha256", mount+"/metadata/example.com")
	assert.Equal(t, 0, c.code, "vault read -field=fingerprint_sha256: %s", c)
	assert.Len(t, strings.TrimSpace(c.stdout), 95, "vault read -field=fingerprint_sha256: %s", c)
	for _, p := range []string{mount + "/certs/example.com", mount + "/config"} {
		r := mustRaw(t, v, token, "GET", p, nil, nil)
		assert.Equal(t, 403, r.status, "GET %s with the metadata-only token: want 403, got %s", p, r)
	}
}

// TestBackgroundRefresh: with the background refresh on, reads after the
// first never wait on NHN, even with a cache_ttl far shorter than the test
// and a slow NHN. A read that waited on a download would see a cached_at
// after it began; every read here must see one from before.
//
// NHNCERT_SOAK=1 runs the long measurement instead: cache_ttl=1m,
// refresh_interval=15s, 200 ms upstream latency, 5 minutes of reads.
func TestBackgroundRefresh(t *testing.T) {
	t.Parallel()
	ttl, interval, latency, duration, minDownloads := "6s", "1s", time.Second, 20*time.Second, 3
	if os.Getenv("NHNCERT_SOAK") == "1" {
		ttl, interval, latency, duration, minDownloads = "1m", "15s", 200*time.Millisecond, 5*time.Minute, 5
	}
	e := newEnv(t)
	v := e.vault
	mustCLI(t, v, "write", mount+"/config", "cache_ttl="+ttl, "refresh_interval="+interval)
	require.NoError(t, e.emu.admin.SetLatency(ctxT(t), latency))
	path := mount + "/metadata/example.com"
	read := func() (time.Time, time.Duration) {
		t.Helper()
		start := time.Now()
		s, err := v.client.Logical().Read(path)
		took := time.Since(start)
		require.NoError(t, err, "read %s", path)
		require.NotNil(t, s, "read %s", path)
		assert.Empty(t, s.Warnings, "read %s warned", path)
		cachedAt, ok := s.Data["cached_at"].(string)
		require.True(t, ok, "metadata has no cached_at string: %v", s.Data["cached_at"])
		at, err := time.Parse(time.RFC3339Nano, cachedAt)
		require.NoError(t, err, "cached_at")
		assert.True(t, at.Before(start), "a read that began at %s waited for a download made at %s (took %s)",
			start.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano), took)
		return at, took
	}

	// The first read downloads (and waits on NHN's 1s latency).
	_, err := v.client.Logical().Read(path)
	require.NoError(t, err)
	var (
		seen  []time.Time
		takes []time.Duration
	)
	// Ten reads a second.
	pace := time.NewTicker(100 * time.Millisecond)
	defer pace.Stop()
	for deadline := time.Now().Add(duration); time.Now().Before(deadline); <-pace.C {
		at, took := read()
		if !slices.ContainsFunc(seen, at.Equal) {
			seen = append(seen, at)
		}
		takes = append(takes, took)
	}
	// The run lasts more than three cache_ttl: the copy was replaced in the
	// background several times.
	assert.GreaterOrEqual(t, len(seen), minDownloads, "distinct downloads (cached_at %v); want the background refresh to have replaced the copy at least %d times", seen, minDownloads)
	slices.Sort(takes)
	t.Logf("cache_ttl=%s refresh_interval=%s upstream latency %s: %d reads in %s after the first: p50 %s, p99 %s, max %s; %d copies seen",
		ttl, interval, latency, len(takes), duration, takes[len(takes)/2], takes[len(takes)*99/100], takes[len(takes)-1], len(seen))
}
