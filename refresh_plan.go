package nhncert

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"
)

// What a background run downloads, and when.
//
// Every cached copy falls due once per cache_ttl, at a random point of a
// window shortly before it expires, as certmagic and autocert renew
// certificates: due = fetched + cache_ttl - guard - spread*window, with
// guard = cache_ttl/20 (time left for the download, its retries and the next
// run's list; more when NHN is slow against a short cache_ttl) and window = cache_ttl/10 (3 and 6 minutes at the default
// 1h). spread in [0, 1) is drawn once per download (b.jitter), so copies
// fetched together drift apart from one cycle to the next. A copy is then
// downloaded about once per 0.9 cache_ttl: NHN sees ~1.1 downloads per
// certificate per cache_ttl, and no read waits on NHN.
//
// A run downloads at once what NHN no longer lists (its 52000 drops the
// entry) and what NHN rotated (the list describes another file), and then
// every copy falling due before the next run starts, each at its due time:
// the downloads follow the work due and are spread over the interval, not
// bunched at its start. They are bounded by a rate: twice what refreshes
// every certificate within one guard+window (the schedule asks for that
// rate if all copies were fetched at the same instant), 13 x N/cache_ttl,
// at least one per second. In steady state the rate is N/cache_ttl (2.8/s
// for 10,000 certificates at 1h, the bound 37/s); what the bound leaves for
// later is counted as deferred and taken by the next run.

const (
	refreshGuardDivisor  = 20 // guard = cache_ttl / 20
	refreshWindowDivisor = 10 // window = cache_ttl / 10
	// refreshRateHeadroom: the bound is twice the rate that refreshes
	// every certificate within guard+window, so that copies fetched over a
	// few minutes (a warm-up, a restart) are still refreshed before they
	// expire.
	refreshRateHeadroom = 2
	// minRefreshRate is the rate bound's floor, per second.
	minRefreshRate = 1.0
	// refreshParallel bounds concurrent background downloads: the
	// downloads in flight are the rate times a download's time, 19 at the
	// bound for 10,000 certificates at 1h and 1 s per download.
	refreshParallel = 32
)

// refreshGuard is the time before expiry by which a copy is downloaded
// again: cache_ttl/20, or three times the slowest recent download when NHN
// is that slow against a short cache_ttl, at most half of cache_ttl.
func refreshGuard(ttl, slowest time.Duration) time.Duration {
	return min(max(ttl/refreshGuardDivisor, 3*slowest), ttl/2)
}

// dueAt is when a copy fetched at fetchedAt is downloaded again.
func dueAt(fetchedAt time.Time, ttl, guard time.Duration, spread float64) time.Time {
	window := ttl / refreshWindowDivisor
	return fetchedAt.Add(ttl - guard - time.Duration(spread*float64(window)))
}

// refreshRate is the bound on paced downloads per second for active
// certificates (see above).
func refreshRate(active int, ttl, guard time.Duration) float64 {
	span := (guard + ttl/refreshWindowDivisor).Seconds()
	if span <= 0 {
		return minRefreshRate
	}
	return max(minRefreshRate, refreshRateHeadroom*float64(active)/span)
}

// refreshCandidate is one cached certificate as the plan sees it.
type refreshCandidate struct {
	name      string
	fetchedAt time.Time
	listed    *certInfo // what the list said at download; nil: unknown
	lastUsed  time.Time
	spread    float64
	// unlistedSince is when NHN's lists began leaving the name out; zero
	// while it is listed.
	unlistedSince time.Time
}

type pacedDownload struct {
	name string
	at   time.Time
	// fetchedAt is the copy's when planned: a download that landed since
	// (a refresh=true read, a read after expiry) makes this one needless.
	fetchedAt time.Time
}

type refreshPlan struct {
	missing, rotated []string // the names the list leaves out, or shows changed
	// paced is every download of the run, each at its time and all before
	// the horizon, under one rate bound: first the urgent ones (rotated,
	// and unlisted names not confirmed since they left the list), then
	// those falling due, in order of at.
	paced []pacedDownload
	// urgent is how many of paced's first entries are urgent: once they
	// are done, a rotation NHN's list shows is served.
	urgent   int
	deferred int // due before the horizon, left by the rate bound
}

// planRefresh decides what a run started at now downloads before horizon
// (the next run's start). listed is what the run's list says of a name.
//
// A name the list leaves out is downloaded once to find out (only the file
// endpoint's 52000 drops the entry, so that a wrong list never empties the
// cache); a download that still gets the file confirms it, and from then
// on the name is downloaded when it falls due, like any other: a list that
// loses names costs one paced download per name, not one per name per run.
func planRefresh(now, horizon time.Time, ttl, guard time.Duration, cands []refreshCandidate, listed func(string) *certInfo) refreshPlan {
	var p refreshPlan
	var urgent, due []pacedDownload
	active := 0
	for _, c := range cands {
		info := listed(c.name)
		idle := now.Sub(c.lastUsed) > refreshIdle
		d := pacedDownload{name: c.name, at: now, fetchedAt: c.fetchedAt}
		switch {
		case info == nil:
			p.missing = append(p.missing, c.name)
			if c.unlistedSince.IsZero() || c.fetchedAt.Before(c.unlistedSince) {
				active++
				urgent = append(urgent, d)
				continue
			}
		case idle:
			// Not read lately: left to expire.
		case rotatedUpstream(info, c):
			active++
			p.rotated = append(p.rotated, c.name)
			urgent = append(urgent, d)
			continue
		}
		if idle {
			continue
		}
		active++
		if at := dueAt(c.fetchedAt, ttl, guard, c.spread); at.Before(horizon) {
			d.at = at
			due = append(due, d)
		}
	}
	slices.SortFunc(due, func(a, b pacedDownload) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.name, b.name))
	})
	gap := time.Duration(float64(time.Second) / refreshRate(active, ttl, guard))
	next := now
	all := slices.Concat(urgent, due)
	for i, d := range all {
		if d.at.Before(next) {
			d.at = next
		}
		if !d.at.Before(horizon) {
			p.deferred = len(all) - i
			break
		}
		p.paced = append(p.paced, d)
		if i < len(urgent) {
			p.urgent++
		}
		next = d.at.Add(gap)
	}
	return p
}

// rotatedUpstream reports whether the list describes a file other than the
// copy held, compared with what the list said when the copy was
// downloaded. Of a copy downloaded before any list (after a config write or
// a restart) nothing is known to compare (NHN's file answer carries neither
// dates nor certificateId): it is downloaded once, under the run's rate
// bound, and known from then on.
func rotatedUpstream(info *certInfo, c refreshCandidate) bool {
	if c.listed == nil {
		return true
	}
	return describesAnotherFile(info, c.listed)
}

// refreshCandidates gathers every cached certificate of a generation: the
// index's records (memory and storage alike) with the memory copy's last
// read.
func (b *backend) refreshCandidates(generation string, unlisted map[string]time.Time) []refreshCandidate {
	inMemory := map[string]*cacheEntry{}
	for _, e := range b.cache.entriesOf(generation) {
		inMemory[e.name] = e
		// Put in memory without the index knowing (tests do): index it.
		b.cache.noteIndex(e.name, generation, e.fetchedAt, e.bundle.Leaf.NotAfter, leafNames(e.bundle), e.listedAtDownload.Load(), e.lastUsed.Load())
	}
	recs := b.cache.index.of(generation)
	out := make([]refreshCandidate, 0, len(recs))
	for name, r := range recs {
		c := refreshCandidate{name: name, fetchedAt: r.fetchedAt, listed: r.listed,
			lastUsed: time.Unix(0, r.lastUsed), spread: r.spread, unlistedSince: unlisted[name]}
		if e := inMemory[name]; e != nil && e.fetchedAt.Equal(r.fetchedAt) {
			c.lastUsed = time.Unix(0, max(r.lastUsed, e.lastUsed.Load()))
			if l := e.listedAtDownload.Load(); l != nil {
				c.listed = l
			}
		}
		out = append(out, c)
	}
	return out
}

type refreshStats struct {
	listed, refreshed, removed, failed, deferred int
}

// refreshRun is one background run up to horizon (the next run's start,
// moved by the time the list took):
// list, download what was removed or rotated, then what falls due, paced.
// woken reports that the config changed meanwhile (the rest was left).
func (b *backend) refreshRun(parent context.Context, s logical.Storage, sess *session, horizon time.Time) (stats refreshStats, woken bool, err error) {
	began := time.Now()
	gen := sess.cfg.Generation
	// The run works under its generation's context: a config delete or
	// identity change cancels it, and the gate refuses what it still
	// writes; the loop then plans again (woken).
	ctx, done, ok := b.cache.gate.begin(parent, gen)
	if !ok {
		return stats, true, nil
	}
	defer done()
	defer func() {
		if parent.Err() == nil && !b.cache.gate.alive(gen) {
			woken, err = true, nil
		}
	}()
	if err := b.cache.loadIndex(ctx, s, gen); err != nil {
		return stats, false, fmt.Errorf("reading the cached certificates from storage: %w", err)
	}
	// A pause since the claim (refresh.go): claim again before NHN.
	if err := b.runMayGoOn(ctx, s); err != nil {
		return stats, false, err
	}
	all, err := sess.client.ListCertificates(ctx, "ALL")
	if err != nil {
		return stats, false, err
	}
	infos, _ := servable(all)
	stats.listed = len(infos)
	b.recordList(gen, infos, "all")
	// A run covers one interval from when its list is in: a list slower
	// than the interval (a short one, a slow NHN) moves the next run
	// rather than leaving this one no time to download in.
	horizon = time.Now().Add(horizon.Sub(began))
	ttl := sess.cfg.CacheTTL
	listed := func(name string) *certInfo { return b.catalog.lookup(gen, name) }
	cands := b.refreshCandidates(gen, b.refresher.unlisted.update(gen, time.Now(), cachedNames(b.cache.index, gen), listed))
	plan := planRefresh(time.Now(), horizon, ttl, refreshGuard(ttl, b.cache.slowDownload()), cands, listed)
	stats.deferred = plan.deferred

	var mu sync.Mutex
	var panicked error
	download := func(g *errgroup.Group, name string) {
		g.Go(func() error {
			defer func() {
				if p := recover(); p != nil {
					perr := b.recovered(p)
					mu.Lock()
					defer mu.Unlock()
					stats.failed++
					panicked = perr
				}
			}()
			err := b.cache.refresh(ctx, s, sess, name)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, errDownloadPanicked):
				stats.failed++
				b.refresher.panics.Add(1)
				panicked = err
			case errors.Is(err, errInRetryWindow):
				// NHN failed for it lately: a later run asks, after
				// its retry window (retry_window.go).
				stats.deferred++
			case errors.Is(err, errFileRefused):
				// Its encrypted key could not be opened lately: asked
				// again when the passphrase or the file changes
				// (cache_passphrase.go).
				stats.deferred++
			case errors.Is(err, errCertNotFound):
				stats.removed++
				b.cache.forgetIndex(name, gen) // even when storage had no copy left
			case err != nil:
				stats.failed++
				b.Logger().Debug("background download failed", "name", logName(name), "error", err)
			default:
				stats.refreshed++
			}
			return nil
		})
	}

	// Every download of the run, each at its time under one rate bound:
	// the urgent ones first (after them a rotation is served), then what
	// falls due before the next run.
	pace := b.refresher.pace
	if pace == nil {
		pace = sleepPause
	}
	var g errgroup.Group
	g.SetLimit(refreshParallel)
	checked := false
	check := func() {
		if !checked {
			_ = g.Wait()
			b.refresher.lastRun.Store(int64(time.Since(began)))
			b.refresher.nextRunAt.Store(horizon.UnixNano())
			checked = true
		}
	}
	for i, d := range plan.paced {
		if i == plan.urgent {
			check()
		}
		wait, waited := time.Until(d.at), time.Now()
		r := pace(ctx, b.refresher.wake, wait)
		if r == paused {
			// A wait that ended far later than planned is a pause.
			b.resumed.Late(time.Since(waited) - max(wait, 0))
			// After a pause (a node paused past an election is
			// resumed mid-run) the run claims again before its next
			// call to NHN, and stops if it cannot.
			if err = b.runMayGoOn(ctx, s); err != nil {
				r = pauseEnd
			}
		}
		if r != paused {
			mu.Lock()
			stats.deferred += len(plan.paced) - i
			mu.Unlock()
			woken = r == pauseWoken
			break
		}
		// A copy downloaded since the plan (a refresh=true read, a read
		// after expiry) is not downloaded again before it is due.
		if at, ok := b.cache.index.fetched(d.name, gen); ok && at.After(d.fetchedAt) {
			continue
		}
		download(&g, d.name)
	}
	check()
	_ = g.Wait()

	switch {
	case err != nil:
		return stats, woken, err // lost leadership: stopped
	case panicked != nil:
		return stats, woken, panicked
	case stats.failed > 0 && stats.refreshed == 0:
		return stats, woken, errors.New("every background download failed")
	}
	return stats, woken, nil
}

// unlistedNames remembers, in memory, since when NHN's lists have left out
// each cached name (a truncated or glitching list, or a certificate being
// deleted): the plan downloads such a name once to find out, and a
// download that still gets the file confirms it until it falls due again
// (refresh_plan.go). It holds cached names only, of one generation.
type unlistedNames struct {
	mu         sync.Mutex
	generation string
	since      map[string]time.Time
}

// update records what the run's list (listed, taken at now) says of the
// cached names and returns a copy of the map for the plan.
func (u *unlistedNames) update(generation string, now time.Time, cached []string, listed func(string) *certInfo) map[string]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	prev := u.since
	if u.generation != generation {
		prev = nil
	}
	next := make(map[string]time.Time)
	for _, name := range cached {
		if listed(name) != nil {
			continue
		}
		if at, ok := prev[name]; ok {
			next[name] = at
		} else {
			next[name] = now
		}
	}
	u.generation, u.since = generation, next
	out := make(map[string]time.Time, len(next))
	for k, v := range next {
		out[k] = v
	}
	return out
}
