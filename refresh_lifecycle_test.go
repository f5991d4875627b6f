package nhncert

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// A renewal made right after the first read of a copy downloaded before
// the engine's first list (after a config write or a restart) is served
// after the next run: the list's expirationDate is compared with the copy
// held, not adopted as the copy's (issue 16, point 4: it was missed until
// the copy came due, an hour by default).
func TestRenewalBeforeFirstListServedAfterNextRun(t *testing.T) {
	h := configuredHarness(t, map[string]any{"refresh_interval": "5s"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	before := h.read("example.com", nil).Data["serial_number"]
	renewed, err := h.emu.Rotate("example.com")
	require.NoError(t, err)

	stats := h.run()
	require.Equal(t, 1, stats.refreshed, "the renewed certificate is downloaded by the run")
	after := h.read("example.com", nil).Data["serial_number"]
	require.NotEqual(t, before, after)
	require.Equal(t, emulator.FormatSerial(renewed.Leaf.SerialNumber), after)

	// Once known, the same list does not download it again.
	require.Equal(t, 0, h.run().refreshed)
	require.EqualValues(t, 2, h.fileCalls("example.com"))
}

// The same after a restart: a stored copy of which the list was never seen
// is compared by its expiry.
func TestRenewalBeforeFirstListAfterRestart(t *testing.T) {
	h := configuredHarness(t, map[string]any{"refresh_interval": "5s"})
	h.cached("example.com")
	h.b = h.newBackend(h.storage)
	h.noRetryWait()
	renewed, err := h.emu.Rotate("example.com")
	require.NoError(t, err)
	require.Equal(t, 1, h.run().refreshed)
	require.Equal(t, emulator.FormatSerial(renewed.Leaf.SerialNumber), h.read("example.com", nil).Data["serial_number"])
}

// A refresh=true read made while a background download of that name is
// planned makes the planned one needless: it is not made.
func TestRefreshTrueReplacesPlannedDownload(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1m", "refresh_interval": "10s"})
	h.cached("example.com")
	h.run()
	h.age("example.com", 55*time.Second) // due in this run
	calls := h.fileCalls("example.com")

	read := false
	h.b.refresher.pace = func(ctx context.Context, _ <-chan struct{}, _ time.Duration) pauseResult {
		if !read { // the read comes between the plan and the download
			read = true
			h.read("example.com", map[string]any{"refresh": true})
		}
		return paused
	}
	sess := mustSession(h)
	stats, _, err := h.b.refreshRun(context.Background(), h.storage, sess, time.Now().Add(10*time.Second))
	require.NoError(t, err)
	require.True(t, read)
	require.Equal(t, 0, stats.refreshed)
	require.Equal(t, calls+1, h.fileCalls("example.com"), "one download: the refresh=true read's")
}

// A list that loses names whose files still download costs one download
// per name, paced, and none more before the copies fall due (issue 16,
// point 3: 300 such names made 1,375 downloads in 22 s, every run all of
// them at once).
func TestUnlistedNamesConfirmedOnce(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1h", "refresh_interval": "5s"})
	// 30 names at the rate bound's floor (1/s) over 5 s runs: about 5 per
	// run, all confirmed by the sixth of twelve runs.
	const n = 30
	names := h.seedRead(n)
	h.run()
	h.emu.SetUnlisted(names...)
	h.emu.ResetStats()

	var gaps []time.Duration
	h.b.refresher.pace = func(ctx context.Context, _ <-chan struct{}, d time.Duration) pauseResult {
		gaps = append(gaps, d)
		return paused
	}
	sess := mustSession(h)
	total := 0
	for run := 0; run < 12; run++ {
		start := time.Now()
		stats, _, err := h.b.refreshRun(context.Background(), h.storage, sess, start.Add(sess.cfg.RefreshInterval))
		require.NoError(t, err)
		total += stats.refreshed
	}
	// Each name once in all, never again while its confirmed copy is
	// fresh (the old plan: every name in every run, 360).
	require.EqualValues(t, n, h.emu.Stats().FileCalls, "downloads over 12 runs")
	require.Equal(t, n, total)
	require.Len(t, h.cacheKeys(), n, "a list that loses names never empties the cache")
	// Paced: the rate bound (here its floor, 1/s) spaces them; the pace
	// was asked to wait about 1/rate between downloads.
	var spaced int
	for _, d := range gaps {
		if d > 500*time.Millisecond {
			spaced++
		}
	}
	require.Greater(t, spaced, n/2, "downloads of unlisted names were spaced by the rate bound")
	_, err := h.request(logical.ReadOperation, "certs/"+names[0], nil)
	require.NoError(t, err)
}
