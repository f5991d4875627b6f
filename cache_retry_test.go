package nhncert

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// elapse makes the retry window of name due now, as if its time had
// passed.
func (h *harness) elapse(name string) {
	h.t.Helper()
	w := &h.b.cache.retry
	w.mu.Lock()
	defer w.mu.Unlock()
	k := retryKey(mustSession(h).cfg.Generation, name)
	r, ok := w.open[k]
	require.True(h.t, ok, "no retry window open for %s", name)
	r.next = time.Now().Add(-time.Millisecond)
	w.open[k] = r
}

// TestOutageRetryWindow: with NHN down and a stale copy cached, 20 reads
// in a row ask NHN once (one read's attempts), not 20 times; each serves
// the copy with the warning naming the next attempt, and its ttl counts to
// that attempt (about 10 s), not 3 s. The window doubles with each failed
// attempt, up to rotation_period or 5 minutes; when NHN is back, the next
// attempt downloads and the window is gone.
func TestOutageRetryWindow(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"cache_ttl": "1s", "refresh_interval": "60s"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	want := h.read("example.com", nil).Data["serial_number"]
	expireCache(h, "example.com")

	h.noRetryWait()
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	before := h.fileCalls("example.com")
	for i := range 20 {
		resp := h.read("example.com", nil)
		require.Equal(t, want, resp.Data["serial_number"], "read %d", i)
		require.Len(t, resp.Warnings, 1, "read %d", i)
		require.Contains(t, resp.Warnings[0], "may be stale")
		require.Contains(t, resp.Warnings[0], "NHN is asked again at")
		ttl := resp.Data["ttl"].(int64)
		require.GreaterOrEqual(t, ttl, int64(8), "read %d: ttl counts to the next attempt", i)
		require.LessOrEqual(t, ttl, int64(11), "read %d: about 10 s (the harness clock is pinned a little before now)", i)
	}
	asked := h.fileCalls("example.com") - before
	t.Logf("20 reads during the outage: %d requests to NHN", asked)
	require.Positive(t, asked)
	require.LessOrEqual(t, asked, int64(maxAttempts), "one read's attempts, then none within the window")

	// Each failed attempt doubles the window, up to max(rotation_period, 5m).
	gen := mustSession(h).cfg.Generation
	var widths []time.Duration
	for range 7 {
		h.elapse("example.com")
		start := time.Now()
		h.read("example.com", nil)
		r, ok := h.b.cache.retry.pending(gen, "example.com", time.Now())
		require.True(t, ok)
		widths = append(widths, r.next.Sub(start).Round(time.Second))
	}
	require.Equal(t, []time.Duration{20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second, 300 * time.Second}, widths)

	// NHN back: the next attempt downloads, and the window is closed.
	h.emu.ClearFault()
	h.elapse("example.com")
	resp := h.read("example.com", nil)
	require.Empty(t, resp.Warnings)
	_, ok := h.b.cache.retry.pending(gen, "example.com", time.Now().Add(-time.Hour))
	require.False(t, ok, "the window closed on success")
}
