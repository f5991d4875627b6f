package nhncert

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// lookup returns name's entry: from memory when fresh; else from one
// download shared by every concurrent caller (refresh forces it). When the
// download fails and a copy whose leaf has not expired is cached, that copy
// is returned with a warning. Nothing is cached from a failed download.
// It also says what the read was, for the metrics: a hit (NHN not asked),
// a miss (downloaded) or stale.
func (c *certCache) lookup(ctx context.Context, s logical.Storage, sess *session, name string, refresh bool) (*cacheEntry, []string, readOutcome, error) {
	if !refresh {
		if e := c.get(name, sess.cfg.Generation); e != nil && e.fresh(time.Now(), sess.cfg.CacheTTL) {
			return e, e.notes, readHit, nil
		}
	}
	mode := fillRead
	if refresh {
		mode = fillRefresh
	}
	r, err := c.download(ctx, s, sess, name, mode)
	if err != nil {
		return nil, nil, readError, err
	}
	switch {
	case r.stale:
		return r.entry, r.warnings, readStale, nil
	case r.cached:
		return r.entry, r.warnings, readHit, nil
	}
	return r.entry, r.warnings, readMiss, nil
}

// refresh downloads name again now for the background refresh, sharing the
// download with concurrent refresh=true reads. It fails when only a stale
// copy could be had.
func (c *certCache) refresh(ctx context.Context, s logical.Storage, sess *session, name string) error {
	r, err := c.download(ctx, s, sess, name, fillBackground)
	if err != nil {
		return err
	}
	if r.stale {
		return errors.New("download failed; the cached copy was kept")
	}
	return nil
}

// fillMode says why fill runs.
type fillMode int

const (
	fillRead       fillMode = iota // a read: served from a fresh copy if any
	fillRefresh                    // a refresh=true read: downloaded now
	fillBackground                 // the background refresh: downloaded now, kept in memory only if it was there
)

// errDownloadPanicked is a download that panicked (and was recovered).
var errDownloadPanicked = errors.New("the download panicked")

type fillResult struct {
	entry    *cacheEntry
	warnings []string
	// stale is set when the download failed and a cached copy was served.
	stale bool
	// cached is set when a fresh copy in storage was served, NHN not asked.
	cached bool
}

// download runs fill once for every concurrent caller asking for the same
// name, generation and kind (refresh or not). The download outlives a
// caller that gives up, so that the others sharing it still get its
// result; the client bounds it.
func (c *certCache) download(ctx context.Context, s logical.Storage, sess *session, name string, mode fillMode) (fillResult, error) {
	key := sess.cfg.Generation + "\x00" + name
	if mode != fillRead {
		key += "\x00refresh"
	}
	ch := c.flight.DoChan(key, func() (v any, err error) {
		// The download runs under its generation's context: retiring the
		// config cancels it (cache_gate.go).
		wctx, done, ok := c.gate.begin(context.WithoutCancel(ctx), sess.cfg.Generation)
		if !ok {
			return nil, errConfigChanged
		}
		defer done()
		// singleflight re-panics a panic of fn in a goroutine of its own,
		// where nothing can recover it: the plugin process (every mount
		// on the node) would die. It is an error instead.
		defer func() {
			if p := recover(); p != nil {
				c.logger.Error("a download panicked; recovered", "name", logName(name), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				err = fmt.Errorf("%w: %v", errDownloadPanicked, p)
			}
		}()
		return c.fill(wctx, s, sess, name, mode)
	})
	select {
	case <-ctx.Done():
		return fillResult{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return fillResult{}, r.Err
		}
		return r.Val.(fillResult), nil
	}
}

// fill serves name from storage when that copy is fresh (and refresh is
// not asked), else downloads it; see lookup.
func (c *certCache) fill(ctx context.Context, s logical.Storage, sess *session, name string, mode fillMode) (fillResult, error) {
	refresh := mode != fillRead
	gen, ttl := sess.cfg.Generation, sess.cfg.CacheTTL
	now := time.Now()
	old := c.get(name, gen)
	if old == nil {
		var err error
		if old, err = c.load(ctx, s, name, gen); errors.Is(err, errNewerStorageFormat) {
			// A newer build's entry: neither served nor overwritten.
			return fillResult{}, err
		} else if err != nil {
			c.logger.Warn("cannot read the cache entry from storage", "name", logName(name), "error", err)
		}
	}
	if old != nil && !refresh && old.fresh(now, ttl) {
		cur, err := c.putNewer(old)
		if err != nil {
			return fillResult{}, err
		}
		return fillResult{entry: cur, warnings: cur.notes, cached: true}, nil
	}

	// NHN failed for this certificate lately: until the window's next
	// attempt NHN is not asked (retry_window.go). An operator's
	// refresh=true asks anyway: it is what one runs to see whether NHN is
	// back; Agent and VSO never send it.
	if mode != fillRefresh {
		if w, ok := c.retry.pending(gen, name, now); ok {
			switch {
			case mode == fillBackground:
				return fillResult{}, errInRetryWindow
			case old != nil && old.usable(now):
				cur, err := c.putNewer(old)
				if err != nil {
					return fillResult{}, err
				}
				return c.staleResult(name, cur, w.cause, w.next), nil
			}
			err := error(&retryWindowError{name: name, next: w.next, cause: w.cause})
			if old != nil {
				err = fmt.Errorf("%w; the cached copy expired at %s and is not served", err, old.bundle.Leaf.NotAfter.UTC().Format(time.RFC3339))
			}
			return fillResult{}, err
		}
	}
	// What the list says now describes the file about to be downloaded.
	listed := c.hooks.listInfo(gen, name)
	// A file refused lately for its encrypted key is that state until
	// the passphrase or the file changes or cache_ttl passes
	// (cache_passphrase.go): neither the background refresh nor a read
	// downloads it and derives its key again (CONTRACT: "refused again,
	// without downloading and deriving again"). An operator's
	// refresh=true asks anyway.
	if mode != fillRefresh {
		if rec, ok := c.refused.lookup(gen, name, listed, now, ttl); ok {
			switch {
			case mode == fillBackground:
				return fillResult{}, errFileRefused
			case old != nil && old.usable(now):
				cur, err := c.putNewer(old)
				if err != nil {
					return fillResult{}, err
				}
				return c.staleResult(name, cur, rec.cause, time.Time{}), nil
			}
			return fillResult{}, rec.cause
		}
	}
	// With a copy to fall back on, or after NHN failed for the name, one
	// attempt: each retry would be one more request to a failing NHN
	// (the window paces the next one). A first download keeps its retries.
	if _, failing := c.retry.lookup(gen, name); failing || (old != nil && old.usable(now)) {
		ctx = nhn.WithOneAttempt(ctx)
	}

	// The entry is dated when the download began: a copy is never older
	// than it says, and of two overlapping downloads the later one wins.
	// The passphrase epoch is read before the passphrase is.
	epoch := c.passphraseEpoch.Load()
	began := time.Now()
	file, err := sess.client.DownloadFile(ctx, name)
	c.noteDownloadTime(time.Since(began))
	var e *cacheEntry
	if err == nil {
		e, err = newEntry(name, gen, file, began, passphraseOf(ctx, s, name))
	}
	if ek, ok := certfile.AsKeyError(err); ok {
		err = ek.WithPath(c.hooks.passphrasePath(name))
		c.noteRefused(gen, name, listed, epoch, began, err)
	}
	if err == nil {
		c.retry.ended(gen, name)
		c.refused.forget(gen, name)
		e.passphraseEpoch = epoch
		e.listedAtDownload.Store(listed)
		kept, err := c.keep(ctx, s, e, mode != fillBackground, old)
		if err != nil {
			return fillResult{}, err
		}
		return fillResult{entry: kept, warnings: kept.warnings(time.Now())}, nil
	}
	if !c.gate.alive(gen) {
		// Cancelled by a config change: not NHN's failure.
		return fillResult{}, errConfigChanged
	}
	if nhn.IsNotFound(err) {
		c.retry.ended(gen, name)
		if old != nil {
			c.drop(ctx, s, name, gen)
		}
		return fillResult{}, errCertNotFound
	}
	c.logger.Warn("download failed", "name", logName(name), "error", err)
	var next time.Time
	if isOutage(err) {
		next = c.retry.failed(gen, name, time.Now(), retryCap(sess.cfg), err).next
	}
	// An overlapping download may have cached a newer copy meanwhile.
	if cur := c.get(name, gen); cur != nil && (old == nil || cur.fetchedAt.After(old.fetchedAt)) && cur.fresh(time.Now(), ttl) {
		return fillResult{entry: cur, warnings: cur.notes}, nil
	}
	if old == nil {
		return fillResult{}, err
	}
	if !old.usable(time.Now()) {
		return fillResult{}, fmt.Errorf("%w; the cached copy expired at %s and is not served", err, old.bundle.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	old, perr := c.putNewer(old)
	if perr != nil {
		return fillResult{}, perr
	}
	return c.staleResult(name, old, err, next), nil
}

// staleResult serves old while NHN fails for it, with a warning that says
// why and, when a window is open, when NHN is asked again.
func (c *certCache) staleResult(name string, old *cacheEntry, cause error, next time.Time) fillResult {
	w := staleWarning(name, old, cause, next)
	return fillResult{entry: old, warnings: append([]string{w}, old.warnings(time.Now())...), stale: true}
}

// noteDownloadTime keeps a decaying maximum of how long downloads take
// (each one takes 1/8 off the last maximum), which the background refresh
// allows for before a copy expires.
func (c *certCache) noteDownloadTime(d time.Duration) {
	for {
		old := c.slowest.Load()
		next := max(int64(d), old-old/8)
		if c.slowest.CompareAndSwap(old, next) {
			return
		}
	}
}

func (c *certCache) slowDownload() time.Duration { return time.Duration(c.slowest.Load()) }
