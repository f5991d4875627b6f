package nhncert

import (
	"context"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// panickyClient is an NHN client whose calls panic, as a bug in a run
// would.
type panickyClient struct {
	nhnClient
	list, download bool
}

func (p panickyClient) ListCertificates(ctx context.Context, status string) ([]certInfo, error) {
	if p.list {
		panic("injected: list")
	}
	return p.nhnClient.ListCertificates(ctx, status)
}

func (p panickyClient) DownloadFile(ctx context.Context, name string) ([]byte, error) {
	if p.download {
		panic("injected: download")
	}
	return p.nhnClient.DownloadFile(ctx, name)
}

// A run that panics (in the list, or in a download goroutine) is
// recovered, logged with the mount, and the loop goes on, backing off.
func TestRefreshLoopSurvivesPanics(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"refresh_interval": "1s"})
	h.b.jitter = func() float64 { return 0 }
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil) // the mount learns its path
	sess := mustSession(h)
	h.b.current.Store(&session{cfg: sess.cfg, client: panickyClient{nhnClient: sess.client, list: true}})

	require.NoError(t, h.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
	// Interval 1 s, jitter 0: the first run after 0.5 s, then 1.8 s (one
	// failure), then 3.6 s (two).
	require.Eventually(t, func() bool { return h.b.refresher.panics.Load() >= 2 }, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		rep := h.b.lastRunReport()
		next := time.Unix(0, h.b.refresher.nextRunAt.Load())
		return h.b.refresher.failures.Load() >= 2 && next.Sub(rep.started) >= runSpacing(time.Second, 2, 0)
	}, 30*time.Second, 20*time.Millisecond, "the wait doubles per failure")
	require.Contains(t, h.logs.String(), "background refresh panicked")
	require.Contains(t, h.logs.String(), `mount=nhncert/`)
	require.Contains(t, h.logs.String(), "injected: list")

	st := h.readPath("status", nil).Data
	require.Equal(t, "error", st["state"])
	require.Contains(t, st["last_run_error"], "panicked")
	require.GreaterOrEqual(t, st["panics"], int64(2))

	// The bug is gone: the next run succeeds and the failures reset.
	h.b.current.Store(sess)
	h.b.wakeRefresher()
	require.Eventually(t, func() bool { return h.b.lastRunReport().err == nil && h.b.refresher.failures.Load() == 0 },
		30*time.Second, 20*time.Millisecond)
}

// A panic in the loop itself, outside a run (here: the jitter it plans the
// first run with), is recovered too: the loop starts again after a wait
// that doubles, and then runs.
func TestRefreshLoopRestartsAfterAPanicOutsideARun(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"refresh_interval": "1s"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)
	var calls atomic.Int64
	h.b.jitter = func() float64 {
		if calls.Add(1) <= 2 {
			panic("injected: jitter")
		}
		return 0
	}
	require.NoError(t, h.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
	// Restarts after 1 s and 2 s, then the first run 0.5 s later.
	require.Eventually(t, func() bool { return h.b.refresher.ran.Load() >= 1 }, 30*time.Second, 20*time.Millisecond)
	require.EqualValues(t, 2, h.b.refresher.panics.Load())
	require.Contains(t, h.logs.String(), "injected: jitter")
	require.NoError(t, h.b.lastRunReport().err)
}

func TestRefreshRecoversAPanicInADownload(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"cache_ttl": "1m", "refresh_interval": "10s"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)
	h.run()
	h.age("example.com", 55*time.Second)
	sess := mustSession(h)
	h.b.current.Store(&session{cfg: sess.cfg, client: panickyClient{nhnClient: sess.client, download: true}})
	stats, err := h.runErr()
	require.ErrorContains(t, err, "panicked")
	require.Equal(t, refreshStats{listed: 1, failed: 1}, stats)
	require.EqualValues(t, 1, h.b.refresher.panics.Load())
}

func TestRunSpacingBacksOffWithJitter(t *testing.T) {
	for _, c := range []struct {
		failures int
		jitter   float64
		want     time.Duration
	}{
		{0, 0, 270 * time.Second},                 // 5m x 0.9
		{0, 0.5, 5 * time.Minute},                 // the interval
		{0, 0.999999, 330 * time.Second},          // just under 5m x 1.1
		{1, 0.5, 10 * time.Minute},                // doubled per failure
		{3, 0.5, 40 * time.Minute},                //
		{4, 0.5, time.Hour},                       // capped
		{maxRefreshFailures, 0, 54 * time.Minute}, // capped, jittered
	} {
		got := runSpacing(5*time.Minute, c.failures, c.jitter).Round(time.Second)
		require.Equal(t, c.want, got, "failures %d jitter %v", c.failures, c.jitter)
	}
	require.Equal(t, 150*time.Second, firstRunDelay(5*time.Minute, 0))
	require.Equal(t, 225*time.Second, firstRunDelay(5*time.Minute, 0.5))
}

// The loop's first run waits the jittered delay: mounts started together
// list NHN at different times, and nextCheck says when.
func TestRefreshLoopJittersItsRuns(t *testing.T) {
	starts := map[float64]time.Duration{}
	for _, j := range []float64{0, 0.9} {
		h := newHarness(t)
		h.configure(map[string]any{"refresh_interval": "60s"})
		h.b.jitter = func() float64 { return j }
		before := time.Now()
		require.NoError(t, h.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
		require.Eventually(t, func() bool { return h.b.refresher.nextRunAt.Load() != 0 }, 10*time.Second, 10*time.Millisecond)
		next := time.Unix(0, h.b.refresher.nextRunAt.Load())
		starts[j] = next.Sub(before).Round(time.Second)
		require.Equal(t, next, h.b.refresher.nextCheck(), "no run yet: the next check is the next start")
	}
	require.Equal(t, 30*time.Second, starts[0])
	require.Equal(t, 57*time.Second, starts[0.9])
}

// The plan, simulated over hours for 10,000 certificates at the defaults
// (cache_ttl 1h, refresh_interval 5m), all fetched in the same minute:
// every certificate is downloaded again before its copy expires (no read
// waits on NHN), about once per cache_ttl, and the downloads spread out.
func TestPlanRefreshKeepsTenThousandFresh(t *testing.T) {
	const (
		n        = 10000
		ttl      = time.Hour
		interval = 5 * time.Minute
	)
	rnd := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	info := &certInfo{Name: "x", FileCreationDate: "2026-01-01"}
	cands := make([]refreshCandidate, n)
	idx := map[string]int{}
	for i := range cands {
		name := "bulk" + time.Duration(i).String()
		cands[i] = refreshCandidate{name: name, fetchedAt: t0.Add(time.Duration(rnd.Int64N(int64(time.Minute)))),
			listed: info, spread: rnd.Float64()}
		idx[name] = i
	}
	listed := func(string) *certInfo { return info }
	downloads := 0
	var perRun []int
	perSecond := map[time.Time]int{}
	for now := t0.Add(interval); now.Before(t0.Add(6 * ttl)); now = now.Add(interval) {
		for i := range cands {
			cands[i].lastUsed = now // read regularly
		}
		p := planRefresh(now, now.Add(interval), ttl, refreshGuard(ttl, time.Second), cands, listed)
		require.Empty(t, p.missing)
		require.Empty(t, p.rotated)
		require.LessOrEqual(t, p.deferred, 10, "run at %s", now.Sub(t0)) // taken by the next run
		for _, c := range cands {
			require.True(t, now.Before(c.fetchedAt.Add(ttl)), "%s expired before the run at %s", c.name, now.Sub(t0))
		}
		for _, d := range p.paced {
			c := &cands[idx[d.name]]
			require.True(t, d.at.Before(c.fetchedAt.Add(ttl)), "%s downloaded after its copy expired", d.name)
			require.False(t, d.at.Before(now), "paced before the run")
			c.fetchedAt, c.spread = d.at, rnd.Float64()
		}
		for _, d := range p.paced {
			perSecond[d.at.Truncate(time.Second)]++
		}
		downloads += len(p.paced)
		perRun = append(perRun, len(p.paced))
	}
	// Five hours after the first hour's bunch: ~1.1 downloads per
	// certificate per cache_ttl.
	perCertPerTTL := float64(downloads) / n / 6
	require.InDelta(t, 1.0, perCertPerTTL, 0.15)
	// Spread: downloads never come faster than the rate bound (37/s for
	// 10,000 at 1h), not in a burst at a run's start. (Copies all fetched
	// in one minute stay grouped for many cycles: each cycle moves a copy
	// by a random share of the 6-minute window only. Reads spread over
	// time spread the copies they fetch.)
	bound := refreshRate(n, ttl, refreshGuard(ttl, time.Second))
	for sec, c := range perSecond {
		require.LessOrEqual(t, float64(c), math.Ceil(bound), "second %s", sec)
	}
	require.Len(t, perRun, 71)
}

func TestRefreshGuardAllowsForSlowDownloads(t *testing.T) {
	require.Equal(t, 3*time.Minute, refreshGuard(time.Hour, time.Second), "cache_ttl/20")
	require.Equal(t, 3*time.Second, refreshGuard(6*time.Second, time.Second), "three slowest downloads, at most half of cache_ttl")
	require.Equal(t, 6*time.Second, refreshGuard(time.Minute, 2*time.Second), "three slowest downloads")
	// dueAt: 1h - 3m - spread x 6m after the download.
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, t0.Add(57*time.Minute), dueAt(t0, time.Hour, 3*time.Minute, 0))
	require.Equal(t, t0.Add(54*time.Minute), dueAt(t0, time.Hour, 3*time.Minute, 0.5))
}
