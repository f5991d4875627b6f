package nhncert

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
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

// shortWindows makes the first retry window d, so that a test can wait
// windows out (they double from d).
func (h *harness) shortWindows(d time.Duration) {
	w := &h.b.cache.retry
	w.mu.Lock()
	defer w.mu.Unlock()
	w.base = d
}

// waitWindow waits until the retry window of name, if any, has passed.
func (h *harness) waitWindow(name string) {
	h.t.Helper()
	gen := mustSession(h).cfg.Generation
	require.Eventually(h.t, func() bool {
		_, open := h.b.cache.retry.pending(gen, name, time.Now())
		return !open
	}, 10*time.Second, 5*time.Millisecond, "the retry window of %s does not pass", name)
}

// window returns name's retry window, if NHN's last answer for it failed.
func (h *harness) window(name string) (retryWindow, bool) {
	return h.b.cache.retry.lookup(mustSession(h).cfg.Generation, name)
}

// TestOutageReadsAskNHNOncePerWindow: with NHN down and a stale copy
// cached, 20 reads in a row ask NHN once (one attempt: there is a copy to
// serve), not 20 x 3 times; each serves the copy with the warning naming
// the next attempt, and its ttl counts to that attempt (about 10 s), not
// 3 s. After the window, one more attempt; when NHN is back, reads within
// the window still serve the stale copy without asking, and the attempt
// after it downloads, serves the fresh copy and closes the window.
func TestOutageReadsAskNHNOncePerWindow(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1s", "refresh_interval": "0"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	want := h.read("example.com", nil).Data["serial_number"]
	expireCache(h, "example.com")

	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	before := h.fileCalls("example.com")
	for i := range 20 {
		resp := h.read("example.com", nil)
		require.Equal(t, want, resp.Data["serial_number"], "read %d", i)
		require.Len(t, resp.Warnings, 1, "read %d", i)
		require.Contains(t, resp.Warnings[0], "may be stale", "read %d", i)
		require.Contains(t, resp.Warnings[0], "refreshing it failed", "read %d", i)
		require.Contains(t, resp.Warnings[0], "NHN is asked again at", "read %d", i)
		ttl := resp.Data["ttl"].(int64)
		require.GreaterOrEqual(t, ttl, int64(9), "read %d: ttl counts to the next attempt", i)
		require.LessOrEqual(t, ttl, int64(12), "read %d: about 10 s (the harness clock is pinned a little before now)", i)
	}
	asked := h.fileCalls("example.com") - before
	t.Logf("20 reads during the outage: %d request(s) to NHN", asked)
	require.EqualValues(t, 1, asked, "one attempt, then none within the window")

	// The window passes: one more attempt, which fails and doubles it.
	h.elapse("example.com")
	before = h.fileCalls("example.com")
	resp := h.read("example.com", nil)
	require.Contains(t, resp.Warnings[0], "may be stale")
	require.EqualValues(t, 1, h.fileCalls("example.com")-before)
	w, ok := h.window("example.com")
	require.True(t, ok)
	require.Equal(t, 2, w.failures)
	require.InDelta(t, float64(20*time.Second), float64(time.Until(w.next)), float64(time.Second))

	// An operator's refresh=true asks NHN even within the window.
	before = h.fileCalls("example.com")
	resp = h.read("example.com", map[string]any{"refresh": true})
	require.Contains(t, resp.Warnings[0], "may be stale")
	require.EqualValues(t, 1, h.fileCalls("example.com")-before, "refresh=true asks, once")

	// NHN back: within the window reads still do not ask.
	h.emu.ClearFault()
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	before = h.fileCalls("example.com")
	resp = h.read("example.com", nil)
	require.Contains(t, resp.Warnings[0], "may be stale")
	require.EqualValues(t, 0, h.fileCalls("example.com")-before, "not asked within the window")

	// The window passes: the fresh copy, and the window is closed.
	h.elapse("example.com")
	resp = h.read("example.com", nil)
	require.Empty(t, resp.Warnings)
	require.NotEqual(t, want, resp.Data["serial_number"], "the new certificate is served")
	require.EqualValues(t, 1, h.fileCalls("example.com")-before)
	_, ok = h.window("example.com")
	require.False(t, ok, "the window closed on success")
	require.Equal(t, 0, h.b.cache.retry.size())
}

// TestOutageUncachedNameAsksOncePerWindow: 10 reads of a name never
// downloaded, NHN down, make one read's attempts (3); the others fail at
// once saying why and when NHN is asked again, with the same 502. After
// the window, one attempt.
func TestOutageUncachedNameAsksOncePerWindow(t *testing.T) {
	h := configuredHarness(t, nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown, Target: emulator.TargetFiles})
	for i := range 10 {
		resp, err := h.request(logical.ReadOperation, "certs/example.com", nil)
		require.Nil(t, resp, "read %d", i)
		require.ErrorContains(t, err, "NHN Certificate Manager is unreachable", "read %d", i)
		require.ErrorContains(t, err, "HTTP 503", "read %d", i)
		var coded logical.HTTPCodedError
		require.True(t, errors.As(err, &coded), "read %d", i)
		require.Equal(t, http.StatusBadGateway, coded.Code(), "read %d", i)
		if i > 0 {
			require.ErrorContains(t, err, "it is asked again at", "read %d", i)
		}
		h.requireNoSecrets("error", err.Error())
	}
	asked := h.fileCalls("example.com")
	t.Logf("10 reads of an uncached name during the outage: %d request(s) to NHN", asked)
	require.EqualValues(t, nhn.MaxAttempts, asked, "the first read's attempts, then none within the window")

	h.elapse("example.com")
	_, err := h.request(logical.ReadOperation, "certs/example.com", nil)
	require.Error(t, err)
	require.EqualValues(t, nhn.MaxAttempts+1, h.fileCalls("example.com"), "after the window, one attempt")

	// NHN back, the window waited out: served, window closed.
	h.emu.ClearFault()
	h.elapse("example.com")
	resp := h.read("example.com", nil)
	require.Empty(t, resp.Warnings)
	_, ok := h.window("example.com")
	require.False(t, ok)
}

// TestOutageWindowNotForAnswers: what NHN answered (a file that does not
// parse, an error result) is not an outage: no window, the next read asks.
func TestOutageWindowNotForAnswers(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1s"})
	h.cached("example.com")
	expireCache(h, "example.com")
	for _, f := range []emulator.Fault{
		{Mode: emulator.FaultBadPEM, Target: "files"},
		{Mode: emulator.FaultResult, Target: "files", ResultCode: 52003},
	} {
		h.emu.SetFault(f)
		for range 2 {
			before := h.fileCalls("example.com")
			resp := h.read("example.com", nil)
			require.Contains(t, resp.Warnings[0], "may be stale", f.Mode)
			require.EqualValues(t, 1, h.fileCalls("example.com")-before, f.Mode)
		}
		_, ok := h.window("example.com")
		require.False(t, ok, f.Mode)
	}
}

// TestBackgroundRunDefersNamesInTheirWindow: the background run does not
// ask NHN about a name in its retry window; it counts it deferred, not
// failed.
func TestBackgroundRunDefersNamesInTheirWindow(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1m", "refresh_interval": "10s"})
	h.cached("example.com")
	h.run()
	h.age("example.com", 2*time.Minute)
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown, Target: emulator.TargetFiles})
	resp := h.read("example.com", nil)
	require.Contains(t, resp.Warnings[0], "may be stale")
	_, ok := h.window("example.com")
	require.True(t, ok)

	before := h.fileCalls("example.com")
	stats := h.run()
	require.Equal(t, refreshStats{listed: 1, deferred: 1}, stats)
	require.EqualValues(t, 0, h.fileCalls("example.com")-before, "not asked within its window")

	// Past the window, the run asks (and NHN being back, downloads).
	h.emu.ClearFault()
	h.elapse("example.com")
	stats = h.run()
	require.Equal(t, refreshStats{listed: 1, refreshed: 1}, stats)
	_, ok = h.window("example.com")
	require.False(t, ok)
}

// TestRetryWindowCap: the window doubles per failure from 10 s up to
// rotation_period or 5 minutes, whichever is longer, and no further.
func TestRetryWindowCap(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		cfg  *nhnConfig
		want []time.Duration
	}{
		{&nhnConfig{CacheTTL: time.Second}, []time.Duration{10, 20, 40, 80, 160, 300, 300, 300}},
		{&nhnConfig{CacheTTL: time.Hour, RefreshInterval: 10 * time.Minute}, []time.Duration{10, 20, 40, 80, 160, 320, 600, 600}},
		{&nhnConfig{CacheTTL: 24 * time.Hour, RefreshInterval: time.Hour}, []time.Duration{10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600}},
	} {
		var w retryWindows
		var got []time.Duration
		for range tc.want {
			got = append(got, w.failed("g", "n", t0, retryCap(tc.cfg), errors.New("down")).next.Sub(t0)/time.Second)
		}
		require.Equal(t, tc.want, got, "rotation_period %s", rotationPeriod(tc.cfg))
	}

	// Through reads: each failed attempt doubles it.
	h := configuredHarness(t, map[string]any{"cache_ttl": "1s", "refresh_interval": "0"})
	h.cached("example.com")
	expireCache(h, "example.com")
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	var widths []time.Duration
	for range 7 {
		start := time.Now()
		h.read("example.com", nil)
		w, ok := h.window("example.com")
		require.True(t, ok)
		widths = append(widths, w.next.Sub(start).Round(time.Second))
		h.elapse("example.com")
	}
	require.Equal(t, []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}, widths)
}

// TestRetryWindowsBound: at most maxRetryWindows windows are kept; a new
// one past the bound drops the one whose next attempt comes first.
func TestRetryWindowsBound(t *testing.T) {
	var w retryWindows
	t0 := time.Now()
	cause := errors.New("down")
	for i := range maxRetryWindows {
		// Name 0's next attempt comes first, then name 1's...
		w.failed("g", fmt.Sprint(i), t0.Add(time.Duration(i)*time.Millisecond), time.Hour, cause)
	}
	require.Equal(t, maxRetryWindows, w.size())
	// A name already kept widens its window without dropping another.
	w.failed("g", "5", t0, time.Hour, cause)
	require.Equal(t, maxRetryWindows, w.size())
	w.failed("g", "new", t0, time.Hour, cause)
	require.Equal(t, maxRetryWindows, w.size())
	_, ok := w.lookup("g", "0")
	require.False(t, ok, "the earliest next attempt was dropped")
	_, ok = w.lookup("g", "new")
	require.True(t, ok)
	_, ok = w.lookup("g", "1")
	require.True(t, ok)
}

// TestRetryWindowsStartCleanOnANewConfig: a config write that changes the
// upstream identity leaves no window from the old one.
func TestRetryWindowsStartCleanOnANewConfig(t *testing.T) {
	h := configuredHarness(t, nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	_, err := h.request(logical.ReadOperation, "certs/example.com", nil)
	require.Error(t, err)
	require.Equal(t, 1, h.b.cache.retry.size())
	h.emu.ClearFault()
	_, err = h.request(logical.DeleteOperation, "config", nil)
	require.NoError(t, err)
	h.configure(nil)
	require.Equal(t, 0, h.b.cache.retry.size())
	resp := h.read("example.com", nil)
	require.Empty(t, resp.Warnings)
}

// TestOneAttemptIsAnOutage: a call tried once that found NHN down is an
// outage to the retry windows (the client's side: nhn's TestClientOneAttempt).
func TestOneAttemptIsAnOutage(t *testing.T) {
	require.True(t, isOutage(&nhn.Error{Op: "downloading certificate", Unreachable: true}))
}

// A config write that keeps the identity (a new cache_ttl during an
// outage) keeps what the engine knows of NHN's failures (CONTRACT: "A
// config write that keeps the identity ... keeps what the engine knows of
// NHN's failures (retry windows, refused files)"): the reads after it
// serve the stale copy with the warning and do not call NHN within the
// window.
func TestConfigWriteKeepingIdentityKeepsRetryWindows(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"cache_ttl": "1s", "refresh_interval": "0"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	want := h.read("example.com", nil).Data["serial_number"]
	expireCache(h, "example.com")
	// Downloads fail; the token service answers (the new session asks
	// it for a token, which is not the certificate's attempt).
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown, Target: emulator.TargetFiles})
	h.read("example.com", nil) // the failure opens the window
	_, open := h.window("example.com")
	require.True(t, open, "no retry window after NHN failed")
	before := h.fileCalls("example.com")

	_, err := h.request(logical.UpdateOperation, "config", map[string]any{"cache_ttl": "2s"})
	require.NoError(t, err)
	for i := range 5 {
		resp := h.read("example.com", nil)
		require.Equal(t, want, resp.Data["serial_number"], "read %d", i)
		require.Len(t, resp.Warnings, 1, "read %d", i)
		require.Contains(t, resp.Warnings[0], "may be stale", "read %d", i)
	}
	require.Equal(t, before, h.fileCalls("example.com"), "reads after a config write keeping the identity asked the failing NHN")
	_, open = h.window("example.com")
	require.True(t, open, "the retry window is gone after a config write keeping the identity")
}
