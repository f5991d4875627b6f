package nhncert

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// cacheIndex is what the background refresh needs to know of every cached
// certificate, whether its parsed copy is in memory or only in storage (the
// memory holds maxMemoryEntries; a project may have more): when it was
// fetched, what the list said then, when it was last read, and where in
// the refresh window it is due.
//
// Why an index and not a storage scan per run: a scan reads and decrypts
// every stored file (about 10 KB each, through Vault's gRPC storage) every
// refresh_interval, about 100 MB per run at 10,000 certificates, to learn a
// few dates; and storage does not know when a certificate was last read.
// The index costs about 250 bytes per certificate (2.5 MB at 10,000), is
// filled from storage once when the refresh first runs on a node (after a
// restart or a leader change), and is kept up to date by the cache, the only
// writer of the entries on the active node.
type cacheIndex struct {
	mu      sync.Mutex
	records map[string]*indexRecord // by certificate name
	// loaded is set once the index holds every stored entry.
	loaded bool
}

type indexRecord struct {
	generation string
	fetchedAt  time.Time
	listed     *certInfo
	// notAfter is the copy's leaf's NotAfter, for the expiry metric; zero
	// for a copy stored by a version that did not record it.
	notAfter time.Time
	// names are the leaf's DNS names, learnt once per file for
	// hosts/<hostname> where NHN's list gives no domains (hosts.go); nil
	// for a copy stored by a version that did not record them.
	names []string
	// lastUsed is the last read (unix nanoseconds) while the entry was in
	// memory; refreshCandidates also looks at the memory copy.
	lastUsed int64
	// spread, in [0, 1), is where in the refresh window this copy falls
	// due (see dueAt); drawn once per download so that certificates
	// fetched together do not fall due together.
	spread float64
}

func newCacheIndex() *cacheIndex { return &cacheIndex{records: map[string]*indexRecord{}} }

// note records a copy of name fetched at fetchedAt, unless a later copy is
// recorded already. used is when it was last read; 0 (a background
// download nobody read yet) keeps the last read recorded, or now for a
// name not recorded: a background download never makes an idle
// certificate look read.
func (x *cacheIndex) note(name, generation string, fetchedAt, notAfter time.Time, names []string, listed *certInfo, used int64, jitter func() float64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.records[name]
	if r != nil && r.generation == generation && !fetchedAt.After(r.fetchedAt) {
		if r.names == nil && fetchedAt.Equal(r.fetchedAt) {
			r.names = names // the same copy, read back and parsed
		}
		return
	}
	switch {
	case r != nil && r.generation == generation:
		used = max(used, r.lastUsed)
	case used == 0:
		used = time.Now().UnixNano()
	}
	x.records[name] = &indexRecord{generation: generation, fetchedAt: fetchedAt, notAfter: notAfter, names: names, listed: listed, lastUsed: used, spread: jitter()}
}

// used keeps the last read of an entry leaving memory.
func (x *cacheIndex) used(name, generation string, at int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r := x.records[name]; r != nil && r.generation == generation {
		r.lastUsed = max(r.lastUsed, at)
	}
}

// fetched returns when name's recorded copy of generation was fetched.
func (x *cacheIndex) fetched(name, generation string) (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r := x.records[name]; r != nil && r.generation == generation {
		return r.fetchedAt, true
	}
	return time.Time{}, false
}

// cachedNames returns the names the index holds for generation.
func cachedNames(x *cacheIndex, generation string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.records))
	for name, r := range x.records {
		if r.generation == generation {
			out = append(out, name)
		}
	}
	return out
}

// learnt returns the DNS names of name's cached copy of generation and
// what NHN's list said of it when it was downloaded; false when no copy is
// recorded or its names are not known.
func (x *cacheIndex) learnt(name, generation string) (names []string, listed *certInfo, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.records[name]
	if r == nil || r.generation != generation || r.names == nil {
		return nil, nil, false
	}
	return r.names, r.listed, true
}

func (x *cacheIndex) remove(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.records, name)
}

// clear empties the index; loaded says whether it is then complete (storage
// was emptied too).
func (x *cacheIndex) clear(loaded bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.records = map[string]*indexRecord{}
	x.loaded = loaded
}

// of returns a copy of the records of a generation, and drops the others
// (entries of an old config are never served again).
func (x *cacheIndex) of(generation string) map[string]indexRecord {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[string]indexRecord, len(x.records))
	for name, r := range x.records {
		if r.generation != generation {
			delete(x.records, name)
			continue
		}
		out[name] = *r
	}
	return out
}

func (x *cacheIndex) isLoaded() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.loaded
}

// loadIndex fills the index from storage, once per node: every stored
// entry of the generation, taken as read now (a restart or a leader change
// must not make the certificates servers read wait on NHN; an entry nobody
// reads is left to expire refreshIdle later).
func (c *certCache) loadIndex(ctx context.Context, s logical.Storage, generation string) error {
	if c.index.isLoaded() {
		return nil
	}
	keys, err := listStoredEntryKeys(ctx, s)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		seen := c.drops.Load()
		se, err := readStoredEntryAt(ctx, s, cacheStoragePrefix+k)
		if errors.Is(err, errBadStoredEntry) || (err == nil && (se == nil || se.Generation != generation || storageKey(se.Name) != cacheStoragePrefix+k)) {
			continue
		}
		if err != nil {
			return err
		}
		c.noteLoaded(ctx, s, se, seen, now)
	}
	if !c.gate.admit(generation) {
		return errConfigChanged
	}
	defer c.gate.release()
	c.index.mu.Lock()
	c.index.loaded = true
	c.index.mu.Unlock()
	return nil
}
