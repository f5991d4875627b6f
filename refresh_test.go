package nhncert

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// relist changes what NHN's list says of name, as a re-upload on another
// day would.
func (h *harness) relist(name, fileCreationDate string) {
	h.t.Helper()
	c, ok := h.emu.Get(name)
	require.True(h.t, ok)
	c.FileCreationDate = fileCreationDate
	h.emu.Put(c)
}

// run is one background run up to the next one (an interval away), its
// paced downloads made without waiting.
func (h *harness) run() refreshStats {
	h.t.Helper()
	stats, err := h.runErr()
	require.NoError(h.t, err)
	return stats
}

func (h *harness) runErr() (refreshStats, error) {
	h.t.Helper()
	h.b.refresher.pace = func(ctx context.Context, _ <-chan struct{}, _ time.Duration) pauseResult {
		if ctx.Err() != nil {
			return pauseEnd
		}
		return paused
	}
	sess := mustSession(h)
	stats, _, err := h.b.refreshRun(context.Background(), h.storage, sess, time.Now().Add(sess.cfg.RefreshInterval))
	return stats, err
}

// learnList runs once so that the copies read so far know their list
// entry (the first run downloads each copy made before any list once).
func (h *harness) learnList() {
	h.t.Helper()
	h.run()
}

// idle makes name look not read for two refreshIdle.
func (h *harness) idle(name string) {
	at := time.Now().Add(-2 * refreshIdle).UnixNano()
	if e, ok := h.b.cache.memory.Peek(name); ok {
		e.lastUsed.Store(at)
	}
	x := h.b.cache.index
	x.mu.Lock()
	defer x.mu.Unlock()
	if r := x.records[name]; r != nil {
		r.lastUsed = at
	}
}

// seededListedAged reads n certificates (seedRead), lets one background
// run list them, and ages every copy by by; it returns their names.
func (h *harness) seededListedAged(n int, by time.Duration) []string {
	h.t.Helper()
	names := h.seedRead(n)
	h.run()
	h.ageAll(names, by)
	return names
}

// ageAll ages every name of names by by (see age).
func (h *harness) ageAll(names []string, by time.Duration) {
	h.t.Helper()
	for _, name := range names {
		h.age(name, by)
	}
}

// age makes name's cached copy (in memory, in storage and in the index)
// older by by, as if downloaded that much earlier.
func (h *harness) age(name string, by time.Duration) {
	h.t.Helper()
	ctx := context.Background()
	se, err := readStoredEntry(ctx, h.storage, name)
	require.NoError(h.t, err)
	require.NotNil(h.t, se, name)
	se.FetchedAt = se.FetchedAt.Add(-by)
	require.NoError(h.t, writeStoredEntry(ctx, h.storage, se))
	x := h.b.cache.index
	x.mu.Lock()
	if r := x.records[name]; r != nil {
		r.fetchedAt = se.FetchedAt
	}
	x.mu.Unlock()
	if e, ok := h.b.cache.memory.Peek(name); ok {
		ne, err := newEntry(name, e.generation, e.file, se.FetchedAt, nil)
		require.NoError(h.t, err)
		ne.listedAtDownload.Store(e.listedAtDownload.Load())
		ne.lastUsed.Store(e.lastUsed.Load())
		h.b.cache.memory.Add(name, ne)
	}
}

func TestRefreshNoticesRotationThroughTheList(t *testing.T) {
	h := configuredHarness(t, nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("other.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	first := h.read("example.com", nil).Data
	h.read("other.example.com", nil)

	// The first run learns what the list says of the copies downloaded
	// before it: nothing tells them from a renewal made meanwhile (NHN's
	// file answer has no dates, no certificateId), so each is downloaded
	// once; then nothing is due.
	stats := h.run()
	require.Equal(t, refreshStats{listed: 2, refreshed: 2}, stats)
	require.EqualValues(t, 2, h.fileCalls("example.com"))
	require.Equal(t, refreshStats{listed: 2}, h.run())

	// Rotated upstream on another day: the list says so, the run downloads it.
	rotated, err := h.emu.Rotate("example.com")
	require.NoError(t, err)
	h.relist("example.com", "2099-01-01")
	stats = h.run()
	require.Equal(t, refreshStats{listed: 2, refreshed: 1}, stats)
	got := h.read("example.com", nil).Data
	require.NotEqual(t, first["serial_number"], got["serial_number"])
	require.Equal(t, emulator.FormatSerial(rotated.Leaf.SerialNumber), got["serial_number"])
	require.EqualValues(t, 3, h.fileCalls("example.com"), "the read after the run was a cache hit")
	require.EqualValues(t, 2, h.fileCalls("other.example.com"))

	require.Equal(t, []sentEvent{{
		Type: "nhncert/certificate-updated",
		Metadata: map[string]any{
			"path": "nhncert/certs/example.com", "data_path": "nhncert/certs/example.com",
			"operation": "update", "modified": "true", "name": "example.com",
		},
	}}, h.events.sent())

	// Nothing changed: nothing downloaded, no event.
	require.Equal(t, refreshStats{listed: 2}, h.run())
	require.Len(t, h.events.sent(), 1)
}

func TestRefreshDropsCertificatesGoneUpstream(t *testing.T) {
	h := configuredHarness(t, nil)
	h.cached("example.com")
	h.emu.Remove("example.com")

	require.Equal(t, refreshStats{removed: 1}, h.run())
	require.Empty(t, h.cacheKeys())
	require.Zero(t, h.b.cache.memoryLen())
	ev := h.events.sent()
	require.Len(t, ev, 1)
	require.Equal(t, "nhncert/certificate-removed", ev[0].Type)
	require.Equal(t, "example.com", ev[0].Metadata["name"])
	require.Equal(t, "delete", ev[0].Metadata["operation"])

	_, err := h.request(logical.ReadOperation, "certs/example.com", nil)
	require.ErrorContains(t, err, "not found")
}

func TestRefreshRenewsEntriesBeforeTheyExpire(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "3m", "refresh_interval": "1m"})
	h.b.jitter = func() float64 { return 0.5 }
	h.putChain("due.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("fresh.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("idle.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	for _, n := range []string{"due.example.com", "fresh.example.com", "idle.example.com"} {
		h.read(n, nil)
	}
	h.learnList()
	// Due 3m - 9s - 0.5*18s = 2m42s after download: 2 minutes old, it is
	// due before the next run (a minute away); the fresh one is not.
	h.age("due.example.com", 2*time.Minute)
	h.age("idle.example.com", 2*time.Minute)
	h.idle("idle.example.com")

	stats := h.run()
	require.Equal(t, refreshStats{listed: 3, refreshed: 1}, stats)
	require.EqualValues(t, 3, h.fileCalls("due.example.com"))
	require.EqualValues(t, 2, h.fileCalls("fresh.example.com"))
	require.EqualValues(t, 2, h.fileCalls("idle.example.com"), "not read lately: not refreshed")
	require.Empty(t, h.events.sent(), "same file downloaded again: no event")
}

// Not a fixed number per run: every certificate due before the next run is
// downloaded in this one (the old engine stopped at 100 and deferred the
// rest, so that reads waited on NHN again).
func TestRefreshFollowsTheWorkDue(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1m", "refresh_interval": "10s"})
	const n = 250
	h.seededListedAged(n, 55*time.Second)
	h.emu.ResetStats()
	stats := h.run()
	require.Equal(t, refreshStats{listed: n, refreshed: n}, stats)
	require.EqualValues(t, n, h.emu.Stats().FileCalls)
}

// The paced downloads keep to the rate bound: what it cannot fit before
// the next run is deferred, not downloaded in a burst.
func TestRefreshDefersPastTheRateBound(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "20s", "refresh_interval": "1s"})
	const n = 10
	h.seededListedAged(n, time.Minute) // all overdue
	// 10 certificates, guard+window = 3 s: at most 2 x 10/3 s = 6.7 per
	// second; the run spans 1 s, so 7 downloads (every 0.15 s), 3 deferred.
	stats := h.run()
	require.Equal(t, refreshStats{listed: n, refreshed: 7, deferred: 3}, stats)
}

// Certificates that fell out of memory (which holds maxMemoryEntries) but
// are cached in storage are refreshed too, and refreshing them does not
// push the certificates in memory out.
func TestRefreshCoversCertificatesOnlyInStorage(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1m", "refresh_interval": "10s"})
	h.b.cache.resize(2)
	const n = 6
	names := h.seedRead(n)
	require.Equal(t, 2, h.b.cache.memoryLen())
	inMemory := h.b.cache.memory.Keys()
	h.run()
	h.ageAll(names, 55*time.Second)
	h.emu.ResetStats()
	require.Equal(t, refreshStats{listed: n, refreshed: n}, h.run())
	for _, name := range names {
		require.EqualValues(t, 1, h.fileCalls(name), name)
	}
	require.ElementsMatch(t, inMemory, h.b.cache.memory.Keys(), "the refresh kept memory as the reads left it")

	// The reads that follow are served from the refreshed copies.
	for _, name := range names {
		h.read(name, nil)
	}
	require.EqualValues(t, n, h.emu.Stats().FileCalls)
}

// After a restart (or a leader change) the refresh knows the certificates
// cached in storage before any of them is read again.
func TestRefreshCoversStorageAfterRestart(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1m", "refresh_interval": "10s"})
	const n = 3
	h.seededListedAged(n, 55*time.Second)
	h.b = h.newBackend(h.storage) // restarted: nothing in memory
	h.noRetryWait()
	h.emu.ResetStats()
	require.Equal(t, refreshStats{listed: n, refreshed: n}, h.run())
	require.EqualValues(t, n, h.emu.Stats().FileCalls)
}

func TestRefreshFailsWhenNHNDoes(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1m", "refresh_interval": "1m"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	want := h.read("example.com", nil).Data

	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	_, err := h.runErr()
	require.ErrorContains(t, err, "unreachable")

	// Files fail but the list answers: the run fails, the entry is kept.
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown, Target: "files"})
	h.age("example.com", 55*time.Second)
	stats, err := h.runErr()
	require.Error(t, err)
	require.Equal(t, 1, stats.failed)
	h.emu.ClearFault()
	got := h.read("example.com", nil).Data
	// The run's list named the certificate's ID, unknown at the first read.
	listed, _ := h.emu.Get("example.com")
	require.Equal(t, listed.ID, got["certificate_id"])
	delete(got, "certificate_id")
	// The same copy (aged by h.age, so its timing fields differ).
	require.Equal(t, withoutCopyTiming(want), withoutCopyTiming(got))
}

func TestRefreshLoopRunsOnActiveNodeOnly(t *testing.T) {
	h := configuredHarness(t, map[string]any{"refresh_interval": "1s"})
	h.cached("example.com")

	require.NoError(t, h.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
	require.Eventually(t, func() bool { return h.b.refresher.ran.Load() >= 1 }, 30*time.Second, 20*time.Millisecond)
	h.relist("example.com", "2099-01-01") // rotated upstream on another day
	require.Eventually(t, func() bool { return h.fileCalls("example.com") >= 2 }, 30*time.Second, 20*time.Millisecond,
		"the background run downloads the rotated certificate")
	require.Positive(t, h.b.refresher.ran.Load())

	// A performance standby: the loop wakes up but never calls NHN.
	sh := newHarness(t)
	sh.configure(map[string]any{"refresh_interval": "1s"})
	standby := perfStandbyBackend(t, sh.storage)
	require.NoError(t, standby.Initialize(context.Background(), &logical.InitializationRequest{Storage: sh.storage}))
	require.Eventually(t, func() bool { return standby.refresher.ticks.Load() >= 2 }, 30*time.Second, 20*time.Millisecond)
	require.Zero(t, standby.refresher.ran.Load())
	require.Zero(t, sh.emu.Stats().ListCalls)
}

func TestRefreshLoopStopsOnClean(t *testing.T) {
	h := configuredHarness(t, map[string]any{"refresh_interval": "1s"})
	require.NoError(t, h.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
	done := make(chan struct{})
	go func() { h.b.clean(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Clean did not stop the refresh loop")
	}
}

// A list slower than the interval (a short interval, a slow NHN) does not
// leave the run without time to download what is due: the run covers one
// interval from when its list is in.
func TestRefreshDownloadsAfterASlowList(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1m", "refresh_interval": "1s"})
	h.b.jitter = func() float64 { return 0.5 } // due 1m - 3s - 3s after download: overdue at 55 s
	h.cached("example.com")
	h.run()
	h.age("example.com", 55*time.Second)
	h.b.refresher.pace = func(context.Context, <-chan struct{}, time.Duration) pauseResult { return paused }
	h.emu.SetLatency(300 * time.Millisecond)
	stats, _, err := h.b.refreshRun(context.Background(), h.storage, mustSession(h), time.Now().Add(100*time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, refreshStats{listed: 1, refreshed: 1}, stats)
}
