package nhncert

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
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

func (h *harness) run() refreshStats {
	h.t.Helper()
	stats, err := h.b.refreshRun(context.Background(), h.storage, mustSession(h))
	require.NoError(h.t, err)
	return stats
}

func TestRefreshNoticesRotationThroughTheList(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("other.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	first := h.read("example.com", nil).Data
	h.read("other.example.com", nil)

	// The first run learns what the list says; nothing is due yet.
	stats := h.run()
	require.Equal(t, refreshStats{listed: 2}, stats)
	require.EqualValues(t, 1, h.fileCalls("example.com"))

	// Rotated upstream on another day: the list says so, the run downloads it.
	rotated, err := h.emu.Rotate("example.com")
	require.NoError(t, err)
	h.relist("example.com", "2099-01-01")
	stats = h.run()
	require.Equal(t, refreshStats{listed: 2, refreshed: 1}, stats)
	got := h.read("example.com", nil).Data
	require.NotEqual(t, first["serial_number"], got["serial_number"])
	require.Equal(t, emulator.FormatSerial(rotated.Leaf.SerialNumber), got["serial_number"])
	require.EqualValues(t, 2, h.fileCalls("example.com"), "the read after the run was a cache hit")
	require.EqualValues(t, 1, h.fileCalls("other.example.com"))

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
	h := newHarness(t)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)
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
	h := newHarness(t)
	// Runs every minute: entries leaving the cache within two minutes are due.
	h.configure(map[string]any{"cache_ttl": "3m", "refresh_interval": "1m"})
	h.putChain("due.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("fresh.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("idle.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	for _, n := range []string{"due.example.com", "fresh.example.com", "idle.example.com"} {
		h.read(n, nil)
	}
	st := mustSession(h)
	age := func(name string, by time.Duration, idle bool) {
		e := h.b.cache.get(name, st.cfg.Generation)
		ne, err := newEntry(name, e.generation, e.file, e.fetchedAt.Add(-by))
		require.NoError(t, err)
		h.b.cache.putMemory(ne)
		if idle {
			ne.lastUsed.Store(time.Now().Add(-2 * refreshIdle).UnixNano())
		}
	}
	age("due.example.com", 90*time.Second, false)
	age("idle.example.com", 90*time.Second, true)

	stats := h.run()
	require.Equal(t, refreshStats{listed: 3, refreshed: 1}, stats)
	require.EqualValues(t, 2, h.fileCalls("due.example.com"))
	require.EqualValues(t, 1, h.fileCalls("fresh.example.com"))
	require.EqualValues(t, 1, h.fileCalls("idle.example.com"), "not read lately: not refreshed")
	require.Empty(t, h.events.sent(), "same file downloaded again: no event")
}

func TestRefreshIsBoundedPerRun(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"cache_ttl": "1m", "refresh_interval": "1m"})
	const n = maxRefreshPerRun + 20
	require.NoError(t, h.emu.Seed("bulk", n))
	for i := range n {
		h.read(fmt.Sprintf("bulk%05d.example.com", i), nil)
	}
	h.emu.ResetStats()
	stats := h.run() // every entry expires within two intervals
	require.Equal(t, refreshStats{listed: n, refreshed: maxRefreshPerRun, deferred: 20}, stats)
	require.EqualValues(t, maxRefreshPerRun, h.emu.Stats().FileCalls)
}

func TestRefreshFailsWhenNHNDoes(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"cache_ttl": "1m", "refresh_interval": "1m"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	want := h.read("example.com", nil).Data

	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	_, err := h.b.refreshRun(context.Background(), h.storage, mustSession(h))
	require.ErrorContains(t, err, "unreachable")

	// Files fail but the list answers: the run fails, the entry is kept.
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown, Target: "files"})
	stats, err := h.b.refreshRun(context.Background(), h.storage, mustSession(h))
	require.Error(t, err)
	require.Equal(t, 1, stats.failed)
	h.emu.ClearFault()
	got := h.read("example.com", nil).Data
	// The run's list named the certificate's ID, unknown at the first read.
	listed, _ := h.emu.Get("example.com")
	require.Equal(t, listed.ID, got["certificate_id"])
	delete(got, "certificate_id")
	require.Equal(t, want, got)
}

func TestRefreshLoopRunsOnActiveNodeOnly(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"refresh_interval": "1s"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)

	require.NoError(t, h.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
	require.Eventually(t, func() bool { return h.b.refresher.ran.Load() >= 1 }, 30*time.Second, 20*time.Millisecond)
	h.relist("example.com", "2099-01-01") // rotated upstream on another day
	require.Eventually(t, func() bool { return h.fileCalls("example.com") >= 2 }, 30*time.Second, 20*time.Millisecond,
		"the background run downloads the rotated certificate")
	require.Positive(t, h.b.refresher.ran.Load())

	// A performance standby: the loop wakes up but never calls NHN.
	sh := newHarness(t)
	sh.configure(map[string]any{"refresh_interval": "1s"})
	conf := logical.TestBackendConfig()
	conf.StorageView = sh.storage
	sys := logical.TestSystemView()
	sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	conf.System = sys
	sb, err := Factory(context.Background(), conf)
	require.NoError(t, err)
	standby := sb.(*backend)
	t.Cleanup(func() { standby.clean(context.Background()) })
	require.NoError(t, standby.Initialize(context.Background(), &logical.InitializationRequest{Storage: sh.storage}))
	require.Eventually(t, func() bool { return standby.refresher.ticks.Load() >= 2 }, 30*time.Second, 20*time.Millisecond)
	require.Zero(t, standby.refresher.ran.Load())
	require.Zero(t, sh.emu.Stats().ListCalls)
}

func TestRefreshLoopStopsOnClean(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"refresh_interval": "1s"})
	require.NoError(t, h.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
	done := make(chan struct{})
	go func() { h.b.clean(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Clean did not stop the refresh loop")
	}
}
