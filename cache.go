package nhncert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"
)

const (
	// cacheStoragePrefix holds one seal-wrapped entry per certificate.
	cacheStoragePrefix = "cache/"
	// maxMemoryEntries bounds the parsed certificates kept in memory; past
	// it the least recently used eighth is dropped (and reloaded from
	// storage when asked for again). At about 10 KB per entry this is ~40 MB
	// at most.
	maxMemoryEntries = 4096
)

// certCache keeps downloaded certificate files in Vault's storage (so they
// survive restarts and leader changes) and parsed, ready-to-serve copies in
// memory (so a hit costs no storage round trip and no parsing).
type certCache struct {
	mu      sync.RWMutex
	entries map[string]*cacheEntry // by certificate name
	max     int

	flight singleflight.Group
	// storeMu makes "is a newer copy cached?" and the storage write one
	// step, so that a slow download never overwrites a newer one.
	storeMu sync.Mutex
	logger  hclog.Logger
	// listed returns what the latest list said of a name, if anything.
	listed func(generation, name string) *certInfo
	// changed is told when a download replaced a different file, or NHN
	// said a cached name no longer exists.
	changed func(ctx context.Context, kind changeKind, name string)
}

type changeKind int

const (
	certUpdated changeKind = iota
	certRemoved
)

// cacheEntry is one downloaded, checked certificate file.
type cacheEntry struct {
	name       string
	generation string
	file       []byte
	bundle     *Bundle
	fetchedAt  time.Time
	// data is the read response for the default format, built once.
	data map[string]any
	// notes are warnings every read of this entry carries.
	notes []string
	// listed is what NHN's list said of the certificate when the file was
	// downloaded (nil when unknown); a later list that differs means the
	// certificate was rotated upstream.
	listed atomic.Pointer[certInfo]

	lastUsed atomic.Int64 // unix nanoseconds, for eviction
}

// storedEntry is a cache entry as written to storage.
type storedEntry struct {
	Name       string    `json:"name"`
	Generation string    `json:"generation"`
	FetchedAt  time.Time `json:"fetched_at"`
	File       []byte    `json:"file"`
	Listed     *certInfo `json:"listed,omitempty"`
}

func newCertCache(max int) *certCache {
	return &certCache{
		entries: make(map[string]*cacheEntry),
		max:     max,
		logger:  hclog.NewNullLogger(),
		listed:  func(string, string) *certInfo { return nil },
		changed: func(context.Context, changeKind, string) {},
	}
}

func storageKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return cacheStoragePrefix + hex.EncodeToString(sum[:])
}

// newEntry parses file and builds the entry, or says why the file is not
// servable. Nothing is cached from a file that fails here.
func newEntry(name, generation string, file []byte, fetchedAt time.Time) (*cacheEntry, error) {
	bundle, err := ParseBundle(file)
	if err != nil {
		return nil, err
	}
	data, err := renderCert(bundle, formatPEM, "")
	if err != nil {
		return nil, err
	}
	e := &cacheEntry{name: name, generation: generation, file: file, bundle: bundle, fetchedAt: fetchedAt, data: data}
	if n := bundle.Unrelated; n > 0 {
		e.notes = []string{fmt.Sprintf("the file holds %d certificate(s) outside the leaf's chain; they are left out", n)}
	}
	return e, nil
}

// fresh reports whether e may be served without asking NHN: younger than
// ttl and its leaf not expired.
func (e *cacheEntry) fresh(now time.Time, ttl time.Duration) bool {
	return now.Before(e.fetchedAt.Add(ttl)) && e.usable(now)
}

// usable reports whether e may be served at all, as a stale copy when NHN
// fails: its leaf has not expired.
func (e *cacheEntry) usable(now time.Time) bool {
	return now.Before(e.bundle.Leaf.NotAfter)
}

// get returns the in-memory entry for name if it belongs to generation.
func (c *certCache) get(name, generation string) *cacheEntry {
	c.mu.RLock()
	e := c.entries[name]
	c.mu.RUnlock()
	if e == nil || e.generation != generation {
		return nil
	}
	e.lastUsed.Store(time.Now().UnixNano())
	return e
}

// putNewer puts e in memory unless a copy of the same generation fetched
// later is there already; it returns the copy that is current.
func (c *certCache) putNewer(e *cacheEntry) (current *cacheEntry, put bool) {
	c.mu.Lock()
	cur := c.entries[e.name]
	if cur != nil && cur.generation == e.generation && cur.fetchedAt.After(e.fetchedAt) {
		c.mu.Unlock()
		return cur, false
	}
	c.mu.Unlock()
	c.putMemory(e)
	return e, true
}

// keep stores a downloaded entry, in memory and in storage, unless a copy
// fetched later was stored meanwhile (an overlapping refresh); it returns
// the copy to serve.
func (c *certCache) keep(ctx context.Context, s logical.Storage, e *cacheEntry) *cacheEntry {
	c.storeMu.Lock()
	defer c.storeMu.Unlock()
	cur, put := c.putNewer(e)
	if !put {
		return cur
	}
	if err := c.store(ctx, s, e); err != nil && !errors.Is(err, logical.ErrReadOnly) {
		c.logger.Warn("cannot write the cache entry to storage; serving it from memory", "name", e.name, "error", err)
	}
	return e
}

func (c *certCache) putMemory(e *cacheEntry) {
	e.lastUsed.Store(time.Now().UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[e.name] = e
	if len(c.entries) > c.max {
		c.evictLocked()
	}
}

// evictLocked drops the least recently used eighth of the entries.
func (c *certCache) evictLocked() {
	all := slices.Collect(maps.Values(c.entries))
	slices.SortFunc(all, func(a, b *cacheEntry) int {
		return int(a.lastUsed.Load() - b.lastUsed.Load())
	})
	for _, e := range all[:max(len(all)/8, 1)] {
		delete(c.entries, e.name)
	}
}

func (c *certCache) forgetMemory(name string) {
	c.mu.Lock()
	delete(c.entries, name)
	c.mu.Unlock()
}

// forgetKey drops the in-memory entry stored under a storage key; another
// node changed it.
func (c *certCache) forgetKey(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.entries {
		if storageKey(name) == key {
			delete(c.entries, name)
		}
	}
}

func (c *certCache) clearMemory() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

func (c *certCache) memoryLen() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// load reads name's entry from storage; nil when there is none, it belongs
// to another generation, or it can no longer be parsed.
func (c *certCache) load(ctx context.Context, s logical.Storage, name, generation string) (*cacheEntry, error) {
	raw, err := s.Get(ctx, storageKey(name))
	if err != nil || raw == nil {
		return nil, err
	}
	var se storedEntry
	if err := raw.DecodeJSON(&se); err != nil {
		c.logger.Warn("ignoring an unreadable cache entry", "name", name, "error", err)
		return nil, nil
	}
	if se.Name != name || se.Generation != generation {
		return nil, nil
	}
	e, err := newEntry(name, generation, se.File, se.FetchedAt)
	if err != nil {
		c.logger.Warn("ignoring a cache entry that no longer parses", "name", name, "error", err)
		return nil, nil
	}
	e.listed.Store(se.Listed)
	return e, nil
}

// store writes e to storage, seal-wrapped. A performance standby cannot
// write (logical.ErrReadOnly); the entry then lives in memory only.
func (c *certCache) store(ctx context.Context, s logical.Storage, e *cacheEntry) error {
	entry, err := logical.StorageEntryJSON(storageKey(e.name), &storedEntry{
		Name: e.name, Generation: e.generation, FetchedAt: e.fetchedAt, File: e.file, Listed: e.listed.Load(),
	})
	if err != nil {
		return err
	}
	entry.SealWrap = true
	return s.Put(ctx, entry)
}

// drop removes a certificate NHN no longer has from the cache and says so.
func (c *certCache) drop(ctx context.Context, s logical.Storage, name string) {
	c.forgetMemory(name)
	if err := s.Delete(ctx, storageKey(name)); err != nil && !errors.Is(err, logical.ErrReadOnly) {
		c.logger.Warn("cannot remove the cache entry of a deleted certificate", "name", name, "error", err)
	}
	c.changed(ctx, certRemoved, name)
}

// entriesOf returns the in-memory entries of a generation.
func (c *certCache) entriesOf(generation string) []*cacheEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*cacheEntry, 0, len(c.entries))
	for _, e := range c.entries {
		if e.generation == generation {
			out = append(out, e)
		}
	}
	return out
}

// purge drops every cached certificate, in memory and in storage.
func (c *certCache) purge(ctx context.Context, s logical.Storage) error {
	c.clearMemory()
	keys, err := s.List(ctx, cacheStoragePrefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range keys {
		if err := s.Delete(ctx, cacheStoragePrefix+k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// errCertNotFound means NHN does not know the name (52000, 52001).
var errCertNotFound = errors.New("certificate not found")

// lookup returns name's entry: from memory when fresh; else from one
// download shared by every concurrent caller (refresh forces it). When the
// download fails and a copy whose leaf has not expired is cached, that copy
// is returned with a warning. Nothing is cached from a failed download.
func (c *certCache) lookup(ctx context.Context, s logical.Storage, st *mountState, name string, refresh bool) (*cacheEntry, []string, error) {
	gen, ttl := st.cfg.Generation, st.cfg.CacheTTL
	if !refresh {
		if e := c.get(name, gen); e != nil && e.fresh(time.Now(), ttl) {
			return e, e.notes, nil
		}
	}
	key := gen + "\x00" + name
	if refresh {
		key += "\x00refresh"
	}
	// The download outlives a caller that gives up, so that the others
	// sharing it still get its result; the client bounds it.
	ch := c.flight.DoChan(key, func() (any, error) {
		return c.fill(context.WithoutCancel(ctx), s, st, name, refresh)
	})
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, nil, r.Err
		}
		res := r.Val.(fillResult)
		return res.entry, res.warnings, nil
	}
}

type fillResult struct {
	entry    *cacheEntry
	warnings []string
	// stale is set when the download failed and a cached copy was served.
	stale bool
}

// refresh downloads name again now, sharing the download with concurrent
// refresh=true reads. It fails when only a stale copy could be had.
func (c *certCache) refresh(ctx context.Context, s logical.Storage, st *mountState, name string) error {
	ch := c.flight.DoChan(st.cfg.Generation+"\x00"+name+"\x00refresh", func() (any, error) {
		return c.fill(context.WithoutCancel(ctx), s, st, name, true)
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return r.Err
		}
		if r.Val.(fillResult).stale {
			return errors.New("download failed; the cached copy was kept")
		}
		return nil
	}
}

func (c *certCache) fill(ctx context.Context, s logical.Storage, st *mountState, name string, refresh bool) (fillResult, error) {
	gen, ttl := st.cfg.Generation, st.cfg.CacheTTL
	now := time.Now()
	old := c.get(name, gen)
	if old == nil {
		var err error
		if old, err = c.load(ctx, s, name, gen); err != nil {
			c.logger.Warn("cannot read the cache entry from storage", "name", name, "error", err)
		}
	}
	if old != nil && !refresh && old.fresh(now, ttl) {
		old, _ = c.putNewer(old)
		return fillResult{entry: old, warnings: old.notes}, nil
	}

	// What the list says now describes the file about to be downloaded.
	// The entry is dated when the download began: a copy is never older
	// than it says, and of two overlapping downloads the later one wins.
	listed := c.listed(gen, name)
	began := time.Now()
	file, err := st.client.DownloadFile(ctx, name)
	var e *cacheEntry
	if err == nil {
		e, err = newEntry(name, gen, file, began)
	}
	if err == nil {
		e.listed.Store(listed)
		if kept := c.keep(ctx, s, e); kept != e {
			return fillResult{entry: kept, warnings: entryWarnings(kept, time.Now())}, nil
		}
		if old != nil && !bytes.Equal(old.file, e.file) {
			c.changed(ctx, certUpdated, name)
		}
		return fillResult{entry: e, warnings: entryWarnings(e, time.Now())}, nil
	}

	if isNotFound(err) {
		if old != nil {
			c.drop(ctx, s, name)
		}
		return fillResult{}, errCertNotFound
	}
	c.logger.Warn("download failed", "name", name, "error", err)
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
	old, _ = c.putNewer(old)
	w := fmt.Sprintf("serving the copy of %q cached at %s, which may be stale: refreshing it failed: %v",
		name, old.fetchedAt.UTC().Format(time.RFC3339), err)
	return fillResult{entry: old, warnings: append([]string{w}, entryWarnings(old, time.Now())...), stale: true}, nil
}

// entryWarnings are the warnings a served entry always carries.
func entryWarnings(e *cacheEntry, now time.Time) []string {
	w := slices.Clone(e.notes)
	if !e.usable(now) {
		w = append(w, fmt.Sprintf("the certificate expired at %s (NHN still serves this file)", e.bundle.Leaf.NotAfter.UTC().Format(time.RFC3339)))
	}
	return w
}

// listedStore remembers what NHN's list said of each certificate: the
// metadata endpoint shows it, and the background refresh compares it with
// what was listed when a file was downloaded to notice rotations. It holds
// one entry per name NHN listed, no more.
type listedStore struct {
	mu         sync.RWMutex
	generation string
	byName     map[string]*certInfo
}

// record stores a list's entries; a complete list (status ALL) replaces
// what was known, a filtered one adds to it.
func (l *listedStore) record(generation string, infos []certInfo, complete bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if complete || l.generation != generation || l.byName == nil {
		l.byName = make(map[string]*certInfo, len(infos))
		l.generation = generation
	}
	for i := range infos {
		c := infos[i]
		l.byName[c.Name] = &c
	}
}

func (l *listedStore) get(generation, name string) *certInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.generation != generation {
		return nil
	}
	return l.byName[name]
}

func (l *listedStore) clear() {
	l.mu.Lock()
	l.byName = nil
	l.generation = ""
	l.mu.Unlock()
}
