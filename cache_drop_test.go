package nhncert

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// Drops racing with copies read from storage: when NHN answers 52000 to
// one download while another read is loading the same name's copy from
// storage, the loaded copy may be served to that read but never comes back
// into memory or the index (where it would be served for up to cache_ttl
// and downloaded again by the next run).

// A copy read from storage just before a concurrent download dropped it
// (NHN said 52000) or stored a later one is served to its read but not put
// back in memory (found by the model test's soak: the dropped copy stayed
// in memory, served for up to cache_ttl, and the next run downloaded it).
func TestCopyDroppedMeanwhileIsNotPutBack(t *testing.T) {
	h := configuredHarness(t, nil)
	h.cached("example.com")
	gen := mustSession(h).cfg.Generation
	h.b.cache.forgetMemory("example.com")
	e, err := h.b.cache.load(context.Background(), h.storage, "example.com", gen)
	require.NoError(t, err)
	require.NotNil(t, e)
	h.b.cache.drop(context.Background(), h.storage, "example.com", gen)

	got, err := h.b.cache.putNewer(e)
	require.NoError(t, err)
	require.Same(t, e, got, "the read is served the copy it read")
	require.True(t, h.b.cache.get("example.com", gen) == nil, "the dropped copy was put back in memory")
}

// pausingStorage holds the first Get of key after it has read the entry,
// until release is closed: a read that has loaded a copy from storage and
// not yet recorded it.
type pausingStorage struct {
	logical.Storage
	key     string
	paused  atomic.Bool
	reached chan struct{}
	release chan struct{}
}

// newPausingStorage pauses the first Get of name's cache entry in inner.
func newPausingStorage(inner logical.Storage, name string) *pausingStorage {
	return &pausingStorage{Storage: inner, key: storageKey(name), reached: make(chan struct{}), release: make(chan struct{})}
}

func (p *pausingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	e, err := p.Storage.Get(ctx, key)
	if key == p.key && p.paused.CompareAndSwap(false, true) {
		close(p.reached)
		<-p.release
	}
	return e, err
}

// A read loading the copy from storage while a refresh=true read learns
// that NHN deleted the certificate (52000) does not record the copy again
// after the drop: the next read answers that the certificate is gone, and
// the next run does not download it (found by the second soak: model seed
// 1796291583376976769, I5, "the run downloaded 1 times for 0 cached
// certificates"; before the fix the copy stayed in memory and the index).
func TestCopyLoadedDuringDropIsNotRecorded(t *testing.T) {
	const name = "example.com"
	h := configuredHarness(t, nil)
	h.cached(name)
	ps := newPausingStorage(h.storage, name)
	h.storage = ps
	h.b.cache.forgetMemory(name) // evicted: the next read loads it from storage
	h.emu.Remove(name)

	done := make(chan error, 1)
	go func() {
		_, err := h.request(logical.ReadOperation, "certs/"+name, nil)
		done <- err
	}()
	<-ps.reached // the read holds the stored copy, not yet recorded
	resp, err := h.request(logical.ReadOperation, "certs/"+name, map[string]any{"refresh": true})
	requireGone(t, resp, err, "refresh=true after NHN deleted it")
	require.Empty(t, h.cacheKeys(), "the 52000 removed the stored copy")
	close(ps.release)
	<-done // served the copy it read, or told it is gone: either is right

	gen := mustSession(h).cfg.Generation
	require.True(t, h.b.cache.get(name, gen) == nil, "the dropped copy is back in memory")
	_, indexed := h.b.cache.index.fetched(name, gen)
	require.False(t, indexed, "the dropped copy is back in the index")
	calls := h.fileCalls(name)
	resp, err = h.request(logical.ReadOperation, "certs/"+name, nil)
	requireGone(t, resp, err, "a read after NHN deleted it (and said so)")
	require.Equal(t, calls+1, h.fileCalls(name), "the read asks NHN, as for any certificate not cached")
}

// The same for the index a run loads from storage after a restart: a copy
// dropped while the run read it is not recorded, and the run does not
// download it.
func TestIndexLoadedDuringDropDoesNotRecordIt(t *testing.T) {
	const name = "example.com"
	h := configuredHarness(t, nil)
	h.cached(name)
	ps := newPausingStorage(h.storage, name)
	h.b.clean(context.Background())
	h.storage = ps
	h.b = h.newBackend(ps) // a restart: the index is loaded from storage
	gen := mustSession(h).cfg.Generation
	h.emu.Remove(name)

	done := make(chan error, 1)
	go func() { done <- h.b.cache.loadIndex(context.Background(), ps, gen) }()
	<-ps.reached
	resp, err := h.request(logical.ReadOperation, "certs/"+name, map[string]any{"refresh": true})
	requireGone(t, resp, err, "refresh=true after NHN deleted it")
	close(ps.release)
	require.NoError(t, <-done)
	_, indexed := h.b.cache.index.fetched(name, gen)
	require.False(t, indexed, "the dropped copy is in the index the run plans from")
}

// requireGone requires a read answered "not found" (Vault's 404).
func requireGone(t *testing.T, resp *logical.Response, err error, what string) {
	t.Helper()
	var coded logical.HTTPCodedError
	require.ErrorAs(t, err, &coded, "%s: answered %v", what, resp)
	require.Equal(t, http.StatusNotFound, coded.Code(), "%s: %v", what, err)
}
