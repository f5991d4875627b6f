package nhncert

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The background refresh: one loop per mount on the node that may write
// (see backend.go). Each run lists NHN once, downloads at once what was
// removed or rotated upstream, and then downloads every other certificate
// at its own due time, spread over the time until the next run
// (refresh_plan.go). A run that panics is recovered and counts as a
// failure; failures back off. What the last run did is kept for the status
// path (below).

const (
	// maxRefreshBackoff caps the wait between runs while NHN keeps failing.
	maxRefreshBackoff = time.Hour
	// maxRefreshFailures caps the doubling of the wait (2^16 intervals is
	// past maxRefreshBackoff for any interval of a second or more).
	maxRefreshFailures = 16
	// refreshIdle: an entry nobody read for this long is not refreshed in
	// the background; a read fetches it again when it needs to.
	refreshIdle = 24 * time.Hour
	// unconfiguredWait is how often the loop looks again at a mount that
	// has no config or has the refresh off.
	unconfiguredWait = time.Minute
)

// refresher runs the background refresh on the active node.
type refresher struct {
	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{} // the config changed: look at the interval again

	// ticks counts loop wake-ups, ran the runs made; tests wait on them.
	ticks, ran atomic.Int64
	// lastRun is how long the last run took to list NHN and download what
	// was rotated or removed upstream (nanoseconds): the part of a run
	// after which a rotation is served. The downloads paced over the
	// interval that follow are not in it.
	lastRun atomic.Int64
	// nextRunAt is when the loop's next run starts (unix nanoseconds), 0
	// when none is scheduled on this node (standby, unconfigured, off).
	nextRunAt atomic.Int64
	// running is set while this node's loop runs; panics counts the runs
	// that panicked.
	running  atomic.Bool
	panics   atomic.Int64
	failures atomic.Int64 // consecutive failed runs

	// pace waits d between paced downloads, or until ctx ends or the
	// config changes; nil is sleepPause. Tests replace it to run the
	// paced downloads without waiting.
	pace func(ctx context.Context, wake <-chan struct{}, d time.Duration) pauseResult

	// unlisted is since when the lists have left out each cached name.
	unlisted unlistedNames

	mu   sync.Mutex
	last runReport // the last finished run, for status
}

// nextCheck is when the next background run is expected to have listed
// NHN, and so to have noticed any certificate rotated upstream: its start
// plus what the last run took to list and download the rotated ones. Zero
// when no run is scheduled here.
func (r *refresher) nextCheck() time.Time {
	at := r.nextRunAt.Load()
	if at == 0 {
		return time.Time{}
	}
	return time.Unix(0, at).Add(time.Duration(r.lastRun.Load()))
}

type pauseResult int

const (
	paused     pauseResult = iota // d passed
	pauseEnd                      // ctx ended
	pauseWoken                    // the config changed
)

func sleepPause(ctx context.Context, wake <-chan struct{}, d time.Duration) pauseResult {
	if d <= 0 {
		return paused
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return pauseEnd
	case <-wake:
		return pauseWoken
	case <-t.C:
		return paused
	}
}

// initialize starts the background refresh. Vault calls it on the active
// node of the primary cluster (and for local mounts on performance
// secondaries), not on standbys.
func (b *backend) initialize(_ context.Context, req *logical.InitializationRequest) error {
	b.refresher.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		b.refresher.cancel = cancel
		b.refresher.done = make(chan struct{})
		b.refresher.running.Store(true)
		go b.refreshLoop(ctx, req.Storage)
	})
	return nil
}

func (b *backend) stopRefresher() {
	if b.refresher.cancel != nil {
		b.refresher.cancel()
		<-b.refresher.done
	}
}

func (b *backend) wakeRefresher() {
	select {
	case b.refresher.wake <- struct{}{}:
	default:
	}
}

// runSpacing is the time from one run's start to the next: the interval,
// doubled per consecutive failure (capped), times a jitter in [0.9, 1.1) so
// that the mounts of a node (which all start together) drift apart.
func runSpacing(interval time.Duration, failures int, jitter float64) time.Duration {
	d := interval
	for i := 0; i < failures && d < maxRefreshBackoff; i++ {
		d *= 2
	}
	d = min(d, maxRefreshBackoff)
	return time.Duration(float64(d) * (0.9 + 0.2*jitter))
}

// firstRunDelay is the wait before a loop's first run: between half and
// all of the interval, so that mounts started together do not list NHN in
// the same second.
func firstRunDelay(interval time.Duration, jitter float64) time.Duration {
	return time.Duration(float64(interval) * (0.5 + 0.5*jitter))
}

// refreshSession is the session the loop works with, nil when the mount has
// no config (or it cannot be read) or the refresh is off.
func (b *backend) refreshSession(ctx context.Context, s logical.Storage) *session {
	sess, err := b.loadSession(ctx, s)
	if err != nil || sess == nil || sess.cfg.RefreshInterval <= 0 {
		return nil
	}
	return sess
}

// refreshLoop keeps the loop going until ctx ends. A run's panic is
// recovered inside the loop (safeRun); one anywhere else in the loop (a
// bug in its bookkeeping) is recovered here, and the loop starts again
// after a wait that doubles per restart, so that a loop that panics every
// time neither dies nor spins.
func (b *backend) refreshLoop(ctx context.Context, s logical.Storage) {
	defer close(b.refresher.done)
	defer b.refresher.running.Store(false)
	for restarts := 0; ; restarts++ {
		if b.loopUntilEnd(ctx, s) {
			return
		}
		b.refresher.nextRunAt.Store(0)
		wait := min(loopRestartWait<<min(restarts, 12), maxRefreshBackoff)
		if sleepPause(ctx, nil, wait) == pauseEnd {
			return
		}
	}
}

// loopRestartWait is the first wait before a loop that panicked starts
// again.
const loopRestartWait = time.Second

// loopUntilEnd runs the loop; it reports true when ctx ended, false when
// the loop panicked (recovered and logged).
func (b *backend) loopUntilEnd(ctx context.Context, s logical.Storage) (ended bool) {
	defer func() {
		if p := recover(); p != nil {
			_ = b.recovered(p)
			ended = false
		}
	}()
	b.runLoop(ctx, s)
	return true
}

// runLoop plans and starts the runs until ctx ends.
func (b *backend) runLoop(ctx context.Context, s logical.Storage) {
	failures := 0
	var next time.Time // the next run's start; zero: not planned yet
	for {
		sess := b.refreshSession(ctx, s)
		var wait time.Duration
		switch {
		case sess == nil:
			next = time.Time{}
			wait = unconfiguredWait
			b.refresher.nextRunAt.Store(0)
		default:
			if next.IsZero() {
				next = time.Now().Add(firstRunDelay(sess.cfg.RefreshInterval, b.jitter()))
			}
			wait = time.Until(next)
			// Never scheduled on a performance standby or secondary:
			// their storage is read-only and the primary's active node
			// does the work.
			if b.WriteSafeReplicationState() {
				b.refresher.nextRunAt.Store(next.UnixNano())
			} else {
				b.refresher.nextRunAt.Store(0)
			}
		}
		switch sleepPause(ctx, b.refresher.wake, wait) {
		case pauseEnd:
			b.refresher.nextRunAt.Store(0)
			return
		case pauseWoken:
			// The config changed: plan again with the new interval.
			failures, next = 0, time.Time{}
			continue
		}
		b.refresher.ticks.Add(1)
		if sess == nil || !b.WriteSafeReplicationState() {
			next = time.Time{}
			if sess != nil {
				next = time.Now().Add(runSpacing(sess.cfg.RefreshInterval, 0, b.jitter()))
			}
			continue
		}
		if sess = b.refreshSession(ctx, s); sess == nil {
			continue
		}
		// Only the active node runs, and a node that lost leadership
		// (paused past an election, partitioned) may not know it yet:
		// the claim is a storage write it cannot make. A timer that fired
		// far later than planned (this process, or the storage call,
		// stalled) is a reason to check again, not to run.
		planned := next
		if err := b.claimRun(ctx, s); err != nil {
			b.Logger().Info("background refresh not started: this node could not confirm it is still the active one",
				"mount", b.logMount(), "error", err)
			next = time.Now().Add(runSpacing(sess.cfg.RefreshInterval, 0, b.jitter()))
			continue
		}
		if late := time.Since(planned); late > lateTimerSlack(sess.cfg.RefreshInterval) {
			b.Logger().Info("background refresh timer fired late; checking again before a run", "mount", b.logMount(),
				"late", late.Round(time.Millisecond).String())
			next = time.Now().Add(lateRecheck)
			continue
		}
		began := time.Now()
		// The chaos test's checker reads this line to tell which node ran.
		b.Logger().Debug("background refresh starting", "mount", b.logMount())
		// The next run is planned before this one starts: this run paces
		// its downloads up to then, and says so (nextRunAt) once it has
		// listed NHN; until then nextCheck is this run's.
		next = began.Add(runSpacing(sess.cfg.RefreshInterval, 0, b.jitter()))
		rep := b.safeRun(ctx, s, sess, began, next)
		b.recordRun(rep)
		b.metrics.run(rep)
		b.refresher.ran.Add(1) // after the records: tests wait on it
		if rep.woken {
			failures, next = 0, time.Time{}
			continue
		}
		if rep.err != nil {
			failures = min(failures+1, maxRefreshFailures)
			b.refresher.failures.Store(int64(failures))
			next = began.Add(runSpacing(sess.cfg.RefreshInterval, failures, b.jitter()))
			b.refresher.nextRunAt.Store(next.UnixNano())
			b.Logger().Warn("background refresh failed; backing off", "mount", b.logMount(), "error", rep.err,
				"failures", failures, "next_run", next.UTC().Format(time.RFC3339))
			continue
		}
		failures = 0
		b.refresher.failures.Store(0)
		// The run moved the next start by the time its list took.
		if at := b.refresher.nextRunAt.Load(); at != 0 {
			next = time.Unix(0, at)
		}
		b.Logger().Debug("background refresh done", "mount", b.logMount(), "listed", rep.stats.listed, "refreshed", rep.stats.refreshed,
			"removed", rep.stats.removed, "failed", rep.stats.failed, "deferred", rep.stats.deferred)
	}
}

// safeRun is one run; a panic in it is recovered, logged with the mount
// and the stack, and reported as the run's error, so that one bad
// certificate or bug never takes the plugin process (with ServeMultiplex:
// every mount of the plugin on the node) down.
func (b *backend) safeRun(ctx context.Context, s logical.Storage, sess *session, began, horizon time.Time) (rep runReport) {
	rep.started = began
	defer func() {
		if p := recover(); p != nil {
			rep.err = b.recovered(p)
		}
		rep.finished = time.Now()
	}()
	rep.stats, rep.woken, rep.err = b.refreshRun(ctx, s, sess, horizon)
	return rep
}

// recovered logs a recovered panic and makes it an error.
func (b *backend) recovered(p any) error {
	b.refresher.panics.Add(1)
	b.Logger().Error("background refresh panicked; recovered, the loop goes on", "mount", b.logMount(),
		"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return fmt.Errorf("the background refresh panicked: %v", p)
}

// logMount names the mount in logs: its path once a request told it.
func (b *backend) logMount() string {
	if p := b.eventMountPath(); p != "" {
		return p
	}
	return "(mount path not yet known: no request so far)"
}

// runReport is what one background run did, kept for the status path.
type runReport struct {
	started, finished time.Time
	stats             refreshStats
	err               error
	woken             bool // the config changed during the run
}

func (b *backend) recordRun(rep runReport) {
	b.refresher.mu.Lock()
	defer b.refresher.mu.Unlock()
	b.refresher.last = rep
}

func (b *backend) lastRunReport() runReport {
	b.refresher.mu.Lock()
	defer b.refresher.mu.Unlock()
	return b.refresher.last
}

// A node that has lost leadership does not know it at once: the active
// node of a raft cluster paused (SIGSTOP, a long GC, a partition) past the
// election is resumed with its timers overdue, and its plugin would list
// NHN before Vault steps it down, while the new active node runs too.
// Before each run's first call to NHN the loop therefore writes a small
// claim to storage: raft commits a write only on a leader that a quorum
// still follows, so a deposed node's claim fails and its run is not
// started (CONTRACT: "a node that has lost leadership starts no run and
// makes no call to NHN for one, even if its timer fired while it was
// away").

// lateRecheck is how soon a loop whose timer fired late looks again.
const lateRecheck = 2 * time.Second

// lateTimerSlack is how much later than planned a run may start before
// the loop checks again instead: a tenth of the interval, at least 2 s.
func lateTimerSlack(interval time.Duration) time.Duration {
	return max(interval/10, 2*time.Second)
}

// refreshClaim is what the claim holds: when and for which run.
type refreshClaim struct {
	At time.Time `json:"at"`
}

// claimRun writes the claim; an error means this node may not run.
func (b *backend) claimRun(ctx context.Context, s logical.Storage) error {
	v, err := json.Marshal(refreshClaim{At: time.Now().UTC()})
	if err != nil {
		return err
	}
	return s.Put(ctx, &logical.StorageEntry{Key: refreshClaimPath, Value: v})
}
