package nhncert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
)

// maxMemoryEntries bounds the parsed certificates kept in memory; past it
// the least recently used one is dropped (and read back from storage when
// asked for again). At about 10 KB per entry this is ~40 MB at most.
const maxMemoryEntries = 4096

// certCache keeps downloaded certificate files in Vault's storage (so they
// survive restarts and leader changes) and parsed, ready-to-serve copies in
// memory (so a hit costs no storage round trip and no parsing). How an
// entry is filled (one shared download, stale copies when NHN fails) is in
// cache_download.go.
type certCache struct {
	memory *lru.Cache[string, *cacheEntry] // by certificate name
	max    int                             // memory's bound

	// locks, one per name's hash bucket, make "is a newer copy cached?"
	// and the write one step, so that a slow download never overwrites a
	// newer one, without serialising the writes of different names.
	locks  []*locksutil.LockEntry
	flight singleflight.Group
	logger hclog.Logger
	hooks  cacheHooks
	// index knows every cached certificate, in memory or only in storage,
	// for the background refresh (cache_index.go).
	index *cacheIndex
	// jitter is the backend's (tests pin it).
	jitter func() float64
	// slowest is a decaying maximum of download times (nanoseconds).
	slowest atomic.Int64
	// gate admits every write of the cache for the live config generation
	// only (cache_gate.go).
	gate *writeGate
	// retry holds the retry windows of certificates NHN fails for
	// (retry_window.go).
	retry retryWindows
	// drops counts drop's removals: a copy read from storage is recorded
	// only after checking, under its name's lock, that no drop removed it
	// since the read (noteLoaded).
	drops atomic.Uint64
	// refused remembers files whose encrypted key could not be opened,
	// and passphraseEpoch counts passphrase writes and deletes
	// (cache_passphrase.go).
	refused         refusedFiles
	passphraseEpoch atomic.Uint64
}

// cacheHooks is what the cache asks of the rest of the engine.
type cacheHooks interface {
	// listInfo returns what the latest list said of a name, if anything.
	listInfo(generation, name string) *certInfo
	// certChanged is told when a download replaced a different file, or
	// NHN said a cached name no longer exists.
	certChanged(ctx context.Context, kind changeKind, name string)
	// passphrasePath is the path a name's passphrase is written to, for
	// the error of an encrypted key.
	passphrasePath(name string) string
}

// noHooks is the cache's hooks until the backend sets its own.
type noHooks struct{}

func (noHooks) listInfo(string, string) *certInfo               { return nil }
func (noHooks) certChanged(context.Context, changeKind, string) {}
func (noHooks) passphrasePath(name string) string               { return "passphrases/" + name }

func newCertCache(max int) *certCache {
	c := &certCache{
		max:    max,
		locks:  locksutil.CreateLocks(),
		logger: hclog.NewNullLogger(),
		hooks:  noHooks{},
		index:  newCacheIndex(),
		jitter: rand.Float64,
		gate:   newWriteGate(),
	}
	// An entry leaving memory leaves its last read with the index, so
	// that the background refresh still knows whether it is read.
	memory, err := lru.NewWithEvict(max, func(name string, e *cacheEntry) {
		c.index.used(name, e.generation, e.lastUsed.Load())
	})
	if err != nil {
		panic(err) // max <= 0: a programming error
	}
	c.memory = memory
	return c
}

// resize changes the memory bound (tests and benchmarks lower it).
func (c *certCache) resize(max int) {
	c.memory.Resize(max)
	c.max = max
}

// get returns the in-memory entry for name if it belongs to generation.
func (c *certCache) get(name, generation string) *cacheEntry {
	e, ok := c.memory.Get(name)
	if !ok || e.generation != generation {
		return nil
	}
	e.touch()
	return e
}

// putNewer puts e in memory unless a copy of the same generation fetched
// later is there already; it returns the copy that is current. It fails
// with errConfigChanged when e's generation is no longer live.
func (c *certCache) putNewer(e *cacheEntry) (*cacheEntry, error) {
	l := locksutil.LockForKey(c.locks, e.name)
	l.Lock()
	defer l.Unlock()
	if !c.gate.admit(e.generation) {
		return nil, errConfigChanged
	}
	defer c.gate.release()
	// Check again under the lock: a concurrent download may have dropped
	// this copy (NHN answered 52000) or stored a later one to storage
	// only; e is then served to this read but not put back in memory,
	// where it would be served for up to cache_ttl.
	if at, ok := c.index.fetched(e.name, e.generation); !ok || at.After(e.fetchedAt) {
		return e, nil
	}
	cur, _ := c.putNewerLocked(e)
	return cur, nil
}

// putNewerLocked is putNewer for a caller holding e.name's lock and
// admitted by the gate.
func (c *certCache) putNewerLocked(e *cacheEntry) (*cacheEntry, bool) {
	if cur, ok := c.memory.Peek(e.name); ok && cur.generation == e.generation && cur.fetchedAt.After(e.fetchedAt) {
		return cur, false
	}
	c.putMemory(e)
	return e, true
}

// keep stores a downloaded entry, in memory and in storage, unless a copy
// fetched later was stored meanwhile (an overlapping refresh); it returns
// the copy to serve, and whether e replaced a different file (changed:
// for the change event). With toMemory false (a background refresh) an
// entry not in memory is written to storage only, so that refreshing the
// certificates nobody read lately does not push the ones servers read out
// of memory. It fails with errConfigChanged, storing nothing, when e's
// generation is no longer live.
func (c *certCache) keep(ctx context.Context, s logical.Storage, e *cacheEntry, toMemory bool, old *cacheEntry) (*cacheEntry, error) {
	l := locksutil.LockForKey(c.locks, e.name)
	l.Lock()
	defer l.Unlock()
	if !c.gate.admit(e.generation) {
		return nil, errConfigChanged
	}
	defer c.gate.release()
	if e.bundle.KeyEncrypted && c.passphraseEpoch.Load() != e.passphraseEpoch {
		// Decrypted with a passphrase written or deleted since: served
		// to this read, not kept (cache_passphrase.go).
		return e, nil
	}
	if _, inMemory := c.memory.Peek(e.name); inMemory || toMemory {
		cur, put := c.putNewerLocked(e)
		if !put {
			return cur, nil
		}
	}
	c.index.note(e.name, e.generation, e.fetchedAt, e.bundle.Leaf.NotAfter, e.listedAtDownload.Load(), e.lastUsed.Load(), c.jitter)
	if err := c.store(ctx, s, e); err != nil && !errors.Is(err, logical.ErrReadOnly) {
		c.logger.Warn("cannot write the cache entry to storage; serving it from memory", "name", logName(e.name), "error", err)
	}
	if old != nil && !bytes.Equal(old.file, e.file) {
		c.hooks.certChanged(ctx, certUpdated, e.name)
	}
	return e, nil
}

// forgetIndex drops name's index record, for the live generation only.
func (c *certCache) forgetIndex(name, generation string) {
	if !c.gate.admit(generation) {
		return
	}
	defer c.gate.release()
	c.index.remove(name)
}

// noteIndex records a copy in the index, for the live generation only.
func (c *certCache) noteIndex(name, generation string, fetchedAt, notAfter time.Time, listed *certInfo, used int64) {
	if !c.gate.admit(generation) {
		return
	}
	defer c.gate.release()
	c.index.note(name, generation, fetchedAt, notAfter, listed, used, c.jitter)
}

// putMemory puts e in memory, dropping the least recently used entry when
// the memory is full.
func (c *certCache) putMemory(e *cacheEntry) {
	e.touch()
	c.memory.Add(e.name, e)
}

func (c *certCache) forgetMemory(name string) { c.memory.Remove(name) }

// forgetKey drops the in-memory entry stored under a storage key; another
// node changed it.
func (c *certCache) forgetKey(key string) {
	for _, name := range c.memory.Keys() {
		if storageKey(name) == key {
			c.memory.Remove(name)
		}
	}
}

// clearMemory drops the parsed copies, the retry windows and the
// refusals: what follows (a new config, a restart) starts clean.
func (c *certCache) clearMemory() {
	c.memory.Purge()
	c.retry.clear()
	c.refused.clear()
}

func (c *certCache) memoryLen() int { return c.memory.Len() }

// entriesOf returns the in-memory entries of a generation.
func (c *certCache) entriesOf(generation string) []*cacheEntry {
	all := c.memory.Values()
	out := all[:0]
	for _, e := range all {
		if e.generation == generation {
			out = append(out, e)
		}
	}
	return out
}

// load reads name's entry from storage; nil when there is none, it belongs
// to another generation, or it can no longer be parsed.
func (c *certCache) load(ctx context.Context, s logical.Storage, name, generation string) (*cacheEntry, error) {
	seen := c.drops.Load()
	se, err := readStoredEntry(ctx, s, name)
	if errors.Is(err, errBadStoredEntry) {
		c.logger.Warn("ignoring an unreadable cache entry", "name", logName(name), "error", err)
		return nil, nil
	}
	if err != nil || se == nil {
		return nil, err
	}
	if se.Name != name || se.Generation != generation {
		return nil, nil
	}
	e, err := newEntry(name, generation, se.File, se.FetchedAt, passphraseOf(ctx, s, name))
	if err != nil {
		c.logger.Warn("ignoring a cache entry that no longer parses", "name", logName(name), "error", err)
		return nil, nil
	}
	e.listedAtDownload.Store(se.Listed)
	se.NotAfter = e.bundle.Leaf.NotAfter
	if !c.noteLoaded(ctx, s, se, seen, 0) {
		return nil, nil // dropped meanwhile: as if never stored
	}
	return e, nil
}

// noteLoaded records in the index a copy read from storage by a read that
// began when drops was seen, and reports whether the copy is still cached.
// It runs under the name's lock, the lock drop takes: a drop that ran since
// the read (NHN answered 52000 to a concurrent download) removed the copy
// from storage, and the index does not get it back (nor memory: putNewer
// puts only what the index records). Drops are rare; only then is storage
// read again.
func (c *certCache) noteLoaded(ctx context.Context, s logical.Storage, se *storedEntry, seen uint64, used int64) bool {
	l := locksutil.LockForKey(c.locks, se.Name)
	l.Lock()
	defer l.Unlock()
	if c.drops.Load() != seen {
		cur, err := readStoredEntry(ctx, s, se.Name)
		if err != nil || cur == nil || cur.Generation != se.Generation || !cur.FetchedAt.Equal(se.FetchedAt) {
			return false
		}
	}
	c.noteIndex(se.Name, se.Generation, se.FetchedAt, se.NotAfter, se.Listed, used)
	return true
}

// store writes e to storage, seal-wrapped. A performance standby cannot
// write (logical.ErrReadOnly); the entry then lives in memory only.
func (c *certCache) store(ctx context.Context, s logical.Storage, e *cacheEntry) error {
	return writeStoredEntry(ctx, s, &storedEntry{
		Name: e.name, Generation: e.generation, FetchedAt: e.fetchedAt, File: e.file, Listed: e.listedAtDownload.Load(),
		NotAfter: e.bundle.Leaf.NotAfter,
	})
}

// drop removes a certificate NHN no longer has from the cache and says so,
// when generation (the config NHN said it under) is still live: a late
// answer of an old config never removes the new one's copy.
func (c *certCache) drop(ctx context.Context, s logical.Storage, name, generation string) {
	l := locksutil.LockForKey(c.locks, name)
	l.Lock()
	defer l.Unlock()
	if !c.gate.admit(generation) {
		return
	}
	defer c.gate.release()
	c.drops.Add(1)
	c.forgetMemory(name)
	c.index.remove(name)
	if err := deleteStoredEntry(ctx, s, name); err != nil && !errors.Is(err, logical.ErrReadOnly) {
		c.logger.Warn("cannot remove the cache entry of a deleted certificate", "name", logName(name), "error", err)
	}
	c.hooks.certChanged(ctx, certRemoved, name)
}

// purge drops every cached certificate, in memory and in storage. It
// retires the live generation first (cache_gate.go): a download or run in
// flight is cancelled, and whatever it still tries to write is refused, so
// nothing of the old config is written after the purge.
func (c *certCache) purge(ctx context.Context, s logical.Storage) error {
	c.gate.retire()
	c.clearMemory()
	keys, err := listStoredEntryKeys(ctx, s)
	if err != nil {
		c.index.clear(false)
		return err
	}
	var errs []error
	for _, k := range keys {
		if err := s.Delete(ctx, cacheStoragePrefix+k); err != nil {
			errs = append(errs, err)
		}
	}
	// Complete (empty) unless a delete failed: then rebuilt from storage.
	c.index.clear(len(errs) == 0)
	return errors.Join(errs...)
}

// storedLen is how many certificates are cached in storage (for status).
func (c *certCache) storedLen(ctx context.Context, s logical.Storage) (int, error) {
	keys, err := listStoredEntryKeys(ctx, s)
	return len(keys), err
}

// cacheEntry is one downloaded, checked certificate file, parsed and ready
// to serve.
type cacheEntry struct {
	name       string
	generation string
	file       []byte
	bundle     *certfile.Bundle
	// fetchedAt is when the download of this file began: a copy is never
	// older than it says.
	fetchedAt time.Time
	// data is the read response for the default format, built once.
	data map[string]any
	// notes are warnings every read of this entry carries.
	notes []string
	// listedAtDownload is what NHN's list said of the certificate when the
	// file was downloaded (nil when unknown); a later list that differs
	// means the certificate was rotated upstream.
	listedAtDownload atomic.Pointer[certInfo]

	lastUsed atomic.Int64 // unix nanoseconds of the last read
	// passphraseEpoch is the cache's passphrase epoch when the download
	// began (cache_passphrase.go).
	passphraseEpoch uint64
}

// newEntry parses file and builds the entry, or says why the file is not
// servable. Nothing is cached from a file that fails here. pass is asked
// for the passphrase only when the file's key is encrypted; file stays as
// NHN sent it (the entry in storage holds the key encrypted).
func newEntry(name, generation string, file []byte, fetchedAt time.Time, pass certfile.Passphrase) (*cacheEntry, error) {
	bundle, err := certfile.Parse(file, pass)
	if err != nil {
		return nil, err
	}
	data, err := renderCert(bundle, formatPEM, "")
	if err != nil {
		return nil, err
	}
	e := &cacheEntry{name: name, generation: generation, file: file, bundle: bundle, fetchedAt: fetchedAt, data: data}
	e.notes = bundle.Warnings()
	return e, nil
}

func (e *cacheEntry) touch() { e.lastUsed.Store(time.Now().UnixNano()) }

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

// warnings are the warnings a served entry always carries.
func (e *cacheEntry) warnings(now time.Time) []string {
	w := slices.Clone(e.notes)
	if !e.usable(now) {
		w = append(w, fmt.Sprintf("the certificate expired at %s (NHN still serves this file)", e.bundle.Leaf.NotAfter.UTC().Format(time.RFC3339)))
	}
	return w
}
