package nhncert

import (
	"context"
	"errors"
	"sync"
	"time"
)

// The write gate: one place that holds the rule "nothing of a config that
// was deleted or replaced (another upstream identity) is written, kept or
// served after that change returned, and nothing at all after Cleanup".
//
// Every write the cache makes (memory, index, storage, a stored entry's
// removal, the catalog, the change events) goes through admit, which holds
// the gate shared for the write and lets it through only for the live
// generation. retire takes the gate exclusively: it waits for the writes in
// flight, then makes no generation live and cancels the context every
// download and background run of the old generation works under, so they
// stop using the old credentials at once. The config paths retire before
// they purge storage, under configMu: a download that lands after the purge
// finds its generation dead and drops its copy (certmagic's
// check-lock-check, with the lock the purge takes).
//
// The live generation is set again by whoever builds a session from the
// stored config (backend.session, under configMu), so a config write that
// keeps the identity, a restart or a leader change goes on with the same
// generation, and its context, uninterrupted.

// errConfigChanged is the answer to a download whose config was deleted or
// replaced while it ran: its copy was dropped.
var errConfigChanged = errors.New("the engine's config changed while the certificate was being downloaded; its copy was dropped")

// cleanupWait bounds how long Cleanup waits for cancelled downloads to
// return.
const cleanupWait = 10 * time.Second

type writeGate struct {
	mu     sync.RWMutex
	live   string // the generation whose writes are admitted; "" none
	closed bool   // Cleanup ran: nothing is admitted again
	ctx    context.Context
	cancel context.CancelFunc
	// work counts the downloads and runs in flight, for Cleanup's wait.
	work sync.WaitGroup
}

func newWriteGate() *writeGate {
	g := &writeGate{}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.cancel() // nothing is live until a session says so
	return g
}

// setLive makes generation the live one (a session was built from the
// stored config). Same generation: nothing changes.
func (g *writeGate) setLive(generation string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.live == generation {
		return
	}
	g.cancel()
	g.live = generation
	g.ctx, g.cancel = context.WithCancel(context.Background())
}

// retire ends the live generation: writes in flight finish first (the
// exclusive lock waits for them), later ones are refused, and the work of
// that generation is cancelled.
func (g *writeGate) retire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.live = ""
	g.cancel()
}

// close is retire for good (Cleanup): then it waits, up to cleanupWait, for
// the cancelled work to return, so that nothing runs after Cleanup.
func (g *writeGate) close() {
	g.mu.Lock()
	g.closed = true
	g.live = ""
	g.cancel()
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.work.Wait(); close(done) }()
	t := time.NewTimer(cleanupWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// admit lets one write of generation through: it returns false when that
// generation is not live; else the caller writes and then calls release.
// Admitted writes never nest (the RWMutex is not reentrant once a retire
// waits).
func (g *writeGate) admit(generation string) bool {
	g.mu.RLock()
	if g.closed || generation == "" || generation != g.live {
		g.mu.RUnlock()
		return false
	}
	return true
}

func (g *writeGate) release() { g.mu.RUnlock() }

// alive reports whether generation is live now (a check before work, not
// a guard of a write: writes use admit).
func (g *writeGate) alive(generation string) bool {
	if !g.admit(generation) {
		return false
	}
	g.release()
	return true
}

// begin starts a piece of work of generation (a download, a background
// run): it returns a context that ends with parent's values when the
// generation is retired, and done, to be called when the work returns. ok
// is false when the generation is not live: the work must not start.
func (g *writeGate) begin(parent context.Context, generation string) (ctx context.Context, done func(), ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed || generation == "" || generation != g.live {
		return nil, nil, false
	}
	g.work.Add(1)
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(g.ctx, cancel)
	return ctx, func() { stop(); cancel(); g.work.Done() }, true
}
