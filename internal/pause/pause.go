// Package pause tells a process that it was stopped or starved: SIGSTOP
// and SIGCONT, a VM frozen for a snapshot, a host that did not schedule it.
// A process resumed after such a pause does not know what the world did
// meanwhile (another node may have been elected in its place); what it
// held as true before the pause should be confirmed again before it is
// acted on.
//
// A Detector keeps the monotonic time at which the process was last seen
// running: a goroutine ticks every Tick, and every caller of a Gate
// observes too. A gap between two observations longer than Threshold is a
// pause; so is a timer that fired more than Threshold later than planned
// (Late). Each pause moves the detector's epoch on.
//
// A Gate is one user's view: it is clear while no pause happened since the
// user last confirmed (Confirm). Its hot path, Clear, is one atomic load
// and a read of the monotonic clock.
package pause

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// Tick is how often the default detector's goroutine observes.
	Tick = 200 * time.Millisecond
	// Threshold is the gap that counts as a pause: well above Tick, so
	// that a busy scheduler is not taken for a stopped process.
	Threshold = time.Second
)

// Detector notices pauses of the process. Its zero value is not usable:
// see New and Default.
type Detector struct {
	threshold time.Duration
	clock     func() time.Duration // monotonic, from an arbitrary origin
	last      atomic.Int64         // clock when last seen running
	epoch     atomic.Uint64        // pauses seen so far
}

// New is a detector on clock (monotonic; Monotonic for the real one) that
// counts gaps over threshold as pauses. Nothing observes it until Run or a
// Gate does.
func New(threshold time.Duration, clock func() time.Duration) *Detector {
	d := &Detector{threshold: threshold, clock: clock}
	d.last.Store(int64(clock()))
	return d
}

// Monotonic is a clock reading the monotonic time since it was made.
func Monotonic() func() time.Duration {
	base := time.Now()
	return func() time.Duration { return time.Since(base) }
}

var (
	defaultOnce     sync.Once
	defaultDetector *Detector
)

// Default is the process's detector, on the monotonic clock, ticking in a
// goroutine of its own from the first call on for the life of the process.
func Default() *Detector {
	defaultOnce.Do(func() {
		defaultDetector = New(Threshold, Monotonic())
		go defaultDetector.Run(context.Background(), Tick)
	})
	return defaultDetector
}

// Run observes every tick until ctx ends.
func (d *Detector) Run(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.Observe()
		}
	}
}

// Observe records that the process runs now; it reports the clock and
// whether the gap since the last observation was a pause.
func (d *Detector) Observe() (now time.Duration, paused bool) {
	now = d.clock()
	for {
		last := d.last.Load()
		if int64(now) <= last {
			return now, false // observed since by someone else
		}
		if d.last.CompareAndSwap(last, int64(now)) {
			if now-time.Duration(last) > d.threshold {
				d.epoch.Add(1)
				return now, true
			}
			return now, false
		}
	}
}

// Late reports a timer that fired by later than planned: over the
// threshold, it counts as a pause.
func (d *Detector) Late(by time.Duration) bool {
	if by > d.threshold {
		d.epoch.Add(1)
		return true
	}
	return false
}

// Epoch is the number of pauses seen so far.
func (d *Detector) Epoch() uint64 { return d.epoch.Load() }

// ErrPausedAgain is Confirm's answer when the process paused again while
// it confirmed.
var ErrPausedAgain = errors.New("the process was paused again while confirming")

// Gate is clear while no pause happened since its user last confirmed.
type Gate struct {
	d *Detector
	// until is the clock up to which the gate is clear without looking
	// further: the last observation that found no pause plus the
	// threshold. A pause longer than the threshold ends past it, so a
	// call right after the resume, before any tick, is not clear.
	until     atomic.Int64
	confirmed atomic.Uint64 // the epoch last confirmed
	mu        sync.Mutex    // one confirmation at a time
}

// NewGate is a gate that counts as confirmed now.
func (d *Detector) NewGate() *Gate {
	g := &Gate{d: d}
	g.confirmed.Store(d.Epoch())
	return g
}

// Clear reports whether the process ran without a pause since the gate
// was last confirmed. Its hot path is one atomic load; about once per
// threshold a call observes the detector.
func (g *Gate) Clear() bool {
	if int64(g.d.clock()) < g.until.Load() {
		return true
	}
	return g.Steady()
}

// Steady is Clear that always observes the detector, and so also sees a
// Late timer reported since the last observation: the check between the
// steps of a long task.
func (g *Gate) Steady() bool {
	now, _ := g.d.Observe()
	if g.d.Epoch() != g.confirmed.Load() {
		g.until.Store(0)
		return false
	}
	g.until.Store(int64(now + g.d.threshold))
	return true
}

// Confirm runs check, the proof that what the user held before the pause
// still holds, unless the gate is steady; once check succeeds the gate is
// clear again until the next pause. Concurrent callers share one check.
func (g *Gate) Confirm(check func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.Steady() {
		return nil
	}
	e := g.d.Epoch()
	if err := check(); err != nil {
		return err
	}
	now, paused := g.d.Observe()
	if paused || g.d.Epoch() != e {
		return ErrPausedAgain
	}
	g.confirmed.Store(e)
	g.until.Store(int64(now + g.d.threshold))
	return nil
}

// Late is the detector's Late: a timer of the gate's user that fired by
// later than planned.
func (g *Gate) Late(by time.Duration) bool { return g.d.Late(by) }
