package nhncert

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"
)

const (
	// maxRefreshPerRun bounds the downloads of one background run; what is
	// left waits for the next run (or is fetched by a read).
	maxRefreshPerRun = 100
	// refreshParallel bounds concurrent background downloads.
	refreshParallel = 4
	// maxRefreshBackoff caps the wait between runs while NHN keeps failing.
	maxRefreshBackoff = time.Hour
	// refreshIdle: an entry nobody read for this long is not refreshed in
	// the background; a read fetches it again when it needs to.
	refreshIdle = 24 * time.Hour
)

// refresher runs the background refresh on the active node.
type refresher struct {
	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{} // the config changed: look at the interval again

	// ticks counts loop wake-ups, ran the runs made; tests wait on them.
	ticks, ran atomic.Int64
	// lastRun is how long the last run took, in nanoseconds.
	lastRun atomic.Int64
	// nextRunAt is when the loop's next run starts (unix nanoseconds), 0
	// when none is scheduled on this node (standby, unconfigured, off).
	nextRunAt atomic.Int64
}

// nextCheck is when the next background run is expected to have listed
// NHN, and so to have noticed any certificate rotated upstream: its start
// plus what the last run took. Zero when no run is scheduled here.
func (r *refresher) nextCheck() time.Time {
	at := r.nextRunAt.Load()
	if at == 0 {
		return time.Time{}
	}
	return time.Unix(0, at).Add(time.Duration(r.lastRun.Load()))
}

// initialize starts the background refresh. Vault calls it on the active
// node of the primary cluster (and for local mounts on performance
// secondaries), not on standbys.
func (b *backend) initialize(_ context.Context, req *logical.InitializationRequest) error {
	b.refresher.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		b.refresher.cancel = cancel
		b.refresher.done = make(chan struct{})
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

func (b *backend) refreshLoop(ctx context.Context, s logical.Storage) {
	defer close(b.refresher.done)
	failures := 0
	for {
		wait := time.Minute // unconfigured or off: look again later
		scheduled := false
		if sess, err := b.session(ctx, s); err == nil && sess != nil && sess.cfg.RefreshInterval > 0 {
			wait = sess.cfg.RefreshInterval
			for i := 0; i < failures && wait < maxRefreshBackoff; i++ {
				wait *= 2
			}
			wait = min(wait, maxRefreshBackoff)
			scheduled = b.WriteSafeReplicationState()
		}
		if scheduled {
			b.refresher.nextRunAt.Store(time.Now().Add(wait).UnixNano())
		} else {
			b.refresher.nextRunAt.Store(0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			b.refresher.nextRunAt.Store(0)
			return
		case <-b.refresher.wake:
			t.Stop()
			failures = 0
			continue
		case <-t.C:
		}
		b.refresher.ticks.Add(1)
		// Never on a performance standby or secondary: their storage is
		// read-only and the primary's active node does the work.
		if !b.WriteSafeReplicationState() {
			continue
		}
		sess, err := b.session(ctx, s)
		if err != nil || sess == nil || sess.cfg.RefreshInterval == 0 {
			continue
		}
		began := time.Now()
		stats, err := b.refreshRun(ctx, s, sess)
		b.refresher.lastRun.Store(int64(time.Since(began)))
		b.refresher.ran.Add(1)
		if err != nil {
			failures = min(failures+1, 16)
			b.Logger().Warn("background refresh failed; backing off", "error", err, "failures", failures)
			continue
		}
		failures = 0
		b.Logger().Debug("background refresh done", "listed", stats.listed, "refreshed", stats.refreshed,
			"removed", stats.removed, "failed", stats.failed, "deferred", stats.deferred)
	}
}

type refreshStats struct {
	listed, refreshed, removed, failed, deferred int
}

// refreshRun lists every certificate, and downloads again the cached ones
// missing from the list (dropped when NHN answers 52000), those NHN rotated
// (a changed fileCreationDate or expirationDate) and those whose cache
// entry would expire before the next run has finished (two intervals plus
// twice the time the last run took), so that reads do not wait on NHN.
func (b *backend) refreshRun(ctx context.Context, s logical.Storage, sess *session) (refreshStats, error) {
	var stats refreshStats
	infos, _, err := sess.client.ListCertificates(ctx, "ALL")
	if err != nil {
		return stats, err
	}
	stats.listed = len(infos)
	b.catalog.record(sess.cfg.Generation, infos, true)

	now := time.Now()
	horizon := now.Add(2*sess.cfg.RefreshInterval + 2*time.Duration(b.refresher.lastRun.Load()))
	var missing, rotated, due []string
	for _, e := range b.cache.entriesOf(sess.cfg.Generation) {
		info := b.catalog.lookup(sess.cfg.Generation, e.name)
		switch {
		case info == nil:
			// Gone from the list. Only the file endpoint's 52000 drops
			// the entry, so that a wrong list never empties the cache.
			missing = append(missing, e.name)
		case now.Sub(time.Unix(0, e.lastUsed.Load())) > refreshIdle:
			// Not read lately: left to expire.
		case e.listedAtDownload.Load() == nil:
			// Downloaded before any list: adopt what NHN says now.
			e.listedAtDownload.Store(info)
			if e.fetchedAt.Add(sess.cfg.CacheTTL).Before(horizon) {
				due = append(due, e.name)
			}
		case info.describesAnotherFile(e.listedAtDownload.Load()):
			rotated = append(rotated, e.name)
		case e.fetchedAt.Add(sess.cfg.CacheTTL).Before(horizon):
			due = append(due, e.name)
		}
	}
	work := slices.Concat(missing, rotated, due)
	if len(work) > maxRefreshPerRun {
		stats.deferred = len(work) - maxRefreshPerRun
		work = work[:maxRefreshPerRun]
	}

	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(refreshParallel)
	for _, name := range work {
		g.Go(func() error {
			err := b.cache.refresh(gctx, s, sess, name)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, errCertNotFound):
				stats.removed++
			case err != nil:
				stats.failed++
				b.Logger().Debug("background download failed", "name", name, "error", err)
			default:
				stats.refreshed++
			}
			return nil
		})
	}
	_ = g.Wait()
	if stats.failed > 0 && stats.refreshed == 0 {
		return stats, errors.New("every background download failed")
	}
	return stats, nil
}
