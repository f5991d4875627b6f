package nhncert

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
)

// Learning the host names of certificates NHN lists without domains (API
// v1.1, the government cloud): their files are read, once per file, and
// their leaf's DNS names kept with the cached copy (hosts.go). One pass
// per mount at a time reads every file not known yet, for every lookup
// waiting on it, at the background refresh's pace (refresh_plan.go's rate
// for that many certificates, at least one a second), so that a fleet of
// servers starting at once costs NHN one paced walk, not a storm. A lookup
// waits for the pass up to hostsLearnWait; the pass goes on after it, under
// its config generation (the write gate cancels it with the config, and
// Cleanup waits for it), and the next lookup finds its work done.

// hostsLearnWait bounds how long a lookup waits for a learning pass; then
// it answers 503, saying how far the pass is. A variable for tests.
var hostsLearnWait = 20 * time.Second

// hostsLearnParallel bounds the files a pass reads at once.
const hostsLearnParallel = 4

// hostsState is the backend's state for hosts/<hostname>.
type hostsState struct {
	memo       *lru.Cache[string, hostMemo]
	listFlight singleflight.Group
	// learnFlight runs one learning pass per generation at a time; pass is
	// the one running, for the progress a waiting lookup reports.
	learnFlight singleflight.Group
	mu          sync.Mutex
	pass        *learnPass
}

func newHostMemo() *lru.Cache[string, hostMemo] {
	memo, err := lru.New[string, hostMemo](maxHostMemo)
	if err != nil {
		panic(err) // a constant bound above zero
	}
	return memo
}

// learnPass is one pass's progress.
type learnPass struct {
	total int
	done  atomic.Int64
	gap   time.Duration
	mu    sync.Mutex
	// failed are the files the pass could not read, with why.
	failed map[string]error
}

// learningError is a lookup that waited hostsLearnWait for a pass that has
// not finished.
type learningError struct {
	done, total int
	left        time.Duration
}

func (e *learningError) Error() string {
	return fmt.Sprintf("NHN's list gives no domains (API v1.1), so the engine reads each certificate file once to learn its host names: "+
		"%d of %d read so far, at the background refresh's pace; read again in about %s", e.done, e.total, e.left.Round(time.Second))
}

// learnHostNames reads the files of unknown (names NHN lists without
// domains whose files are not known) and returns the ones that could not
// be read, with why. It fails with a learningError when the pass outlasts
// deadline.
func (b *backend) learnHostNames(ctx context.Context, s logical.Storage, sess *session, unknown []string, deadline time.Time) (map[string]error, error) {
	gen := sess.cfg.Generation
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	ch := b.hosts.learnFlight.DoChan(gen, func() (any, error) {
		wctx, done, ok := b.cache.gate.begin(context.WithoutCancel(ctx), gen)
		if !ok {
			return nil, errConfigChanged
		}
		defer done()
		return b.learnPass(wctx, s, sess, unknown), nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		p := r.Val.(*learnPass)
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.failed, nil
	case <-timer.C:
		b.hosts.mu.Lock()
		p := b.hosts.pass
		b.hosts.mu.Unlock()
		le := &learningError{left: hostsLearnWait}
		if p != nil {
			d := int(p.done.Load())
			le.done, le.total, le.left = d, p.total, time.Duration(p.total-d)*p.gap
		}
		return nil, le
	}
}

// learntFileChanged reports whether the copy of name the index knows is of
// a file NHN's list shows changed since: it is downloaded again, not read
// from the cache.
func (b *backend) learntFileChanged(generation, name string) bool {
	_, listed, ok := b.cache.index.learnt(name, generation)
	info := b.catalog.lookup(generation, name)
	return ok && listed != nil && info != nil && describesAnotherFile(info, listed)
}

// learnPass reads the files of names through the cache (a fresh stored
// copy is read from storage, else NHN is asked), paced.
func (b *backend) learnPass(ctx context.Context, s logical.Storage, sess *session, names []string) *learnPass {
	ttl := sess.cfg.CacheTTL
	active := len(cachedNames(b.cache.index, sess.cfg.Generation)) + len(names)
	rate := refreshRate(active, ttl, refreshGuard(ttl, b.cache.slowDownload()))
	p := &learnPass{total: len(names), gap: time.Duration(float64(time.Second) / rate), failed: map[string]error{}}
	b.hosts.mu.Lock()
	b.hosts.pass = p
	b.hosts.mu.Unlock()
	pace := b.refresher.pace
	if pace == nil {
		pace = sleepPause
	}
	var g errgroup.Group
	g.SetLimit(hostsLearnParallel)
	for i, name := range names {
		if i > 0 && pace(ctx, nil, p.gap) != paused {
			break
		}
		// Paused since the read that began the pass (which confirmed
		// then): the node may have lost leadership meanwhile
		// (resume_check.go); the pass stops if it cannot confirm.
		if b.runMayGoOn(ctx, s) != nil {
			break
		}
		g.Go(func() error {
			defer p.done.Add(1)
			_, _, _, err := b.cache.lookup(ctx, s, sess, name, b.learntFileChanged(sess.cfg.Generation, name))
			if err != nil {
				p.mu.Lock()
				p.failed[name] = err
				p.mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	b.Logger().Debug("learnt the host names of certificate files", "mount", b.logMount(), "files", len(names), "failed", len(p.failed))
	return p
}
