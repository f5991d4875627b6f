package nhncert

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRotationTiming(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	fetched := now.Add(-10 * time.Minute)
	cfg := func(cacheTTL, refresh time.Duration) *nhnConfig {
		return &nhnConfig{CacheTTL: cacheTTL, RefreshInterval: refresh}
	}
	for _, tc := range []struct {
		name      string
		cfg       *nhnConfig
		fetched   time.Time
		nextCheck time.Time
		jitter    float64
		period    int64
		ttl       int64
	}{
		{"next background run first", cfg(time.Hour, 5*time.Minute), fetched, now.Add(90 * time.Second), 0, 300, 90},
		{"a part of a second rounds up", cfg(time.Hour, 5*time.Minute), fetched, now.Add(90*time.Second + time.Millisecond), 0, 300, 91},
		{"jitter adds up to a tenth of the period", cfg(time.Hour, 5*time.Minute), fetched, now.Add(90 * time.Second), 0.5, 300, 105},
		{"jitter is capped at 30 s", cfg(24*time.Hour, 12*time.Hour), fetched, now.Add(time.Hour), 0.999, 43200, 3630},
		{"no run scheduled here (a performance standby): at most refresh_interval", cfg(time.Hour, 5*time.Minute), fetched, time.Time{}, 0.9, 300, 300},
		{"no run scheduled here, expiry sooner than refresh_interval", cfg(time.Hour, 5*time.Minute), now.Add(-58 * time.Minute), time.Time{}, 0, 300, 120},
		{"expiry before the next run", cfg(time.Hour, 5*time.Minute), now.Add(-59 * time.Minute), now.Add(4 * time.Minute), 0, 300, 60},
		{"refresh off: cache_ttl, the next run ignored", cfg(time.Hour, 0), fetched, now.Add(time.Minute), 0, 3600, 3000},
		{"refresh off, jitter over cache_ttl", cfg(time.Hour, 0), fetched, time.Time{}, 0.5, 3600, 3015},
		{"cache_ttl shorter than the period bounds the jitter", cfg(20*time.Second, 5*time.Minute), now.Add(-10 * time.Second), now.Add(4 * time.Minute), 0.999, 300, 12},
		{"never below 3 s", cfg(time.Hour, 5*time.Minute), fetched, now.Add(time.Second), 0, 300, 3},
		{"a run overdue: 3 s", cfg(time.Hour, 5*time.Minute), fetched, now.Add(-time.Second), 0, 300, 3},
		{"stale copy: the next background attempt", cfg(time.Hour, 5*time.Minute), now.Add(-2 * time.Hour), now.Add(2 * time.Minute), 0, 300, 120},
		{"stale copy, refresh off: 3 s", cfg(time.Hour, 0), now.Add(-2 * time.Hour), time.Time{}, 0, 3600, 3},
		{"cache_ttl 0, refresh off: every read downloads", cfg(0, 0), now, time.Time{}, 0.9, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rotationTiming(tc.cfg, tc.fetched, tc.nextCheck, time.Time{}, now, tc.jitter)
			require.Equal(t, map[string]any{
				"last_vault_rotation": tc.fetched.UTC().Format(time.RFC3339Nano),
				"rotation_period":     tc.period,
				"ttl":                 tc.ttl,
			}, got)
		})
	}
}

// consul-template asserts json.Number on ttl and VSO parses
// last_vault_rotation with RFC3339Nano: integers, and a time that parses
// back to the download's instant.
func TestRotationFieldsEncodeAsVaultReadsThem(t *testing.T) {
	fetched := time.Date(2026, 12, 1, 9, 59, 58, 123456789, time.FixedZone("KST", 9*3600))
	got := rotationTiming(&nhnConfig{CacheTTL: time.Hour, RefreshInterval: time.Minute}, fetched, time.Time{}, time.Time{}, fetched, 0)
	raw, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, `{"last_vault_rotation":"2026-12-01T00:59:58.123456789Z","rotation_period":60,"ttl":60}`, string(raw))
	ts, err := time.Parse(time.RFC3339Nano, got["last_vault_rotation"].(string))
	require.NoError(t, err)
	require.True(t, ts.Equal(fetched))
}
