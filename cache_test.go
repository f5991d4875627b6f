package nhncert

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

func TestReadInvalidFilesAreNeverCached(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	for _, c := range []struct {
		mode emulator.FaultMode
		want string
	}{
		{emulator.FaultBadPEM, "not a PEM file"},
		{emulator.FaultMismatch, "does not match the leaf"},
		{emulator.FaultHuge, "larger than"},
		{emulator.FaultGarbage, "not NHN's result format"},
	} {
		h.emu.SetFault(emulator.Fault{Mode: c.mode, Target: "files"})
		resp, err := h.request(logical.ReadOperation, "certs/example.com", nil)
		require.Nil(t, resp, c.mode)
		require.ErrorContains(t, err, c.want, c.mode)
		require.NotContains(t, err.Error(), "PRIVATE KEY", "no key material in errors")
		require.Empty(t, h.cacheKeys(), c.mode)
		require.Zero(t, h.b.cache.memoryLen())
	}
	h.emu.ClearFault()
	h.read("example.com", nil)
	require.Len(t, h.cacheKeys(), 1)
}

func TestReadServesFromCacheWithinTTL(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	first := h.read("example.com", nil).Data
	for range 20 {
		require.Equal(t, first, h.read("example.com", nil).Data)
	}
	require.EqualValues(t, 1, h.fileCalls("example.com"))

	// A rotation upstream is seen after refresh=true.
	rotated, err := h.emu.Rotate("example.com")
	require.NoError(t, err)
	require.Equal(t, first, h.read("example.com", nil).Data)
	fresh := h.read("example.com", map[string]any{"refresh": true}).Data
	require.Equal(t, emulator.FormatSerial(rotated.Leaf.SerialNumber), fresh["serial_number"])
	require.Equal(t, fresh, h.read("example.com", nil).Data, "the refreshed copy replaced the cached one")
	require.EqualValues(t, 2, h.fileCalls("example.com"))

	h.requireSealWrapped(storageKey("example.com"))
}

func TestReadRefetchesAfterTTL(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"cache_ttl": "0s"}) // every read goes upstream
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)
	h.read("example.com", nil)
	require.EqualValues(t, 2, h.fileCalls("example.com"))
}

func TestConcurrentColdReadsShareOneDownload(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	// Latency keeps the first download in flight while the others arrive.
	h.emu.SetLatency(200 * time.Millisecond)

	const n = 100
	var wg sync.WaitGroup
	serials := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := h.request(logical.ReadOperation, "certs/example.com", nil)
			errs[i] = err
			if err == nil && resp != nil && !resp.IsError() {
				serials[i] = resp.Data["serial_number"].(string)
			}
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, serials[0], serials[i])
	}
	require.NotEmpty(t, serials[0])
	st := h.emu.Stats()
	require.EqualValues(t, 1, st.FileCalls, "100 concurrent cold reads cause one download")
	require.EqualValues(t, 1, st.TokenIssued)
}

func TestStaleServedWithWarningWhenNHNFails(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"cache_ttl": "1s"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	want := h.read("example.com", nil).Data

	// Past cache_ttl with NHN down: the cached copy, with a warning. An
	// outage opens a retry window (TestOutageReadsAskNHNOncePerWindow),
	// short here: each fault is asked of NHN once it has passed.
	expireCache(h, "example.com")
	h.shortWindows(20 * time.Millisecond)
	for _, f := range []emulator.Fault{
		{Mode: emulator.FaultDown},
		{Mode: emulator.FaultReset},
		{Mode: emulator.FaultGarbage},
		{Mode: emulator.FaultBadPEM, Target: "files"},
		{Mode: emulator.FaultResult, Target: "files", ResultCode: 52003},
	} {
		h.waitWindow("example.com")
		h.emu.SetFault(f)
		resp := h.read("example.com", nil)
		require.Equal(t, withoutCopyTiming(want), withoutCopyTiming(resp.Data), f.Mode)
		require.Len(t, resp.Warnings, 1, f.Mode)
		require.Contains(t, resp.Warnings[0], "may be stale", f.Mode)
		h.requireNoSecrets("warning", resp.Warnings[0])
	}
	// 52000 is NHN saying the certificate is gone: not served, dropped.
	h.waitWindow("example.com")
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultResult, Target: "files", ResultCode: 52000})
	_, err := h.request(logical.ReadOperation, "certs/example.com", nil)
	require.ErrorContains(t, err, "not found")
	require.Empty(t, h.cacheKeys())
}

// TestStaleWarningBoundsTheName: the stale-copy warning quotes the name
// escaped and cut as errors do, so a 500-byte name or a bidi override
// cannot flood or turn around what the operator reads.
func TestStaleWarningBoundsTheName(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"cache_ttl": "1s"})
	name := "\u202e" + strings.Repeat("x", 400)
	h.putChain(name, emulator.ChainOptions{CommonName: "long.example.com"}, emulator.FileOptions{})
	h.read(name, nil)
	expireCache(h, name)
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	resp := h.read(name, nil)
	require.Len(t, resp.Warnings, 1)
	w := resp.Warnings[0]
	require.Contains(t, w, "may be stale")
	require.Contains(t, w, safetext.Quote(name))
	require.NotContains(t, w, "\u202e", "the bidi override is escaped")
	require.NotContains(t, w, strings.Repeat("x", 100), "the name is cut")
}

func TestUncachedNameFailsWhenNHNDown(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	for _, target := range []string{"files", ""} { // the file service, then everything
		h.emu.ResetStats()
		h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown, Target: target})
		resp, err := h.request(logical.ReadOperation, "certs/example.com", nil)
		require.Nil(t, resp)
		require.ErrorContains(t, err, "NHN Certificate Manager is unreachable")
		require.ErrorContains(t, err, "HTTP 503")
		var coded logical.HTTPCodedError
		require.True(t, errors.As(err, &coded))
		require.Equal(t, http.StatusBadGateway, coded.Code())
		if target == "files" {
			require.EqualValues(t, nhn.MaxAttempts, h.emu.Stats().FileCalls, "tried %d times, then given up", nhn.MaxAttempts)
		}
		h.requireNoSecrets("error", err.Error())
	}
	require.Empty(t, h.cacheKeys())
}

func TestExpiredCachedCertificateIsNotServedAsCurrent(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	// A leaf that expires two seconds from now.
	h.putChain("short.example.com", emulator.ChainOptions{NotAfter: time.Now().Add(2 * time.Second)}, emulator.FileOptions{})
	h.read("short.example.com", nil)
	require.Eventually(t, func() bool {
		e := h.b.cache.get("short.example.com", mustSession(h).cfg.Generation)
		return e != nil && !e.usable(time.Now())
	}, 10*time.Second, 50*time.Millisecond)

	// NHN down: the expired copy is refused, even though cache_ttl has not passed.
	h.shortWindows(20 * time.Millisecond)
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	resp, err := h.request(logical.ReadOperation, "certs/short.example.com", nil)
	require.Nil(t, resp)
	require.ErrorContains(t, err, "expired")
	require.ErrorContains(t, err, "not served")
	// Within the retry window: the same refusal, without asking NHN.
	before := h.fileCalls("short.example.com")
	h.shortWindows(time.Minute)
	h.elapse("short.example.com")
	_, err = h.request(logical.ReadOperation, "certs/short.example.com", nil) // opens a minute's window
	require.Error(t, err)
	_, err = h.request(logical.ReadOperation, "certs/short.example.com", nil)
	require.ErrorContains(t, err, "expired")
	require.ErrorContains(t, err, "not served")
	require.ErrorContains(t, err, "it is asked again at")
	require.EqualValues(t, 1, h.fileCalls("short.example.com")-before, "one attempt after the first window, none within the second")
	h.shortWindows(20 * time.Millisecond)
	h.elapse("short.example.com")

	// NHN up but still holding the expired file: served, flagged expired,
	// once the retry window the outage opened has passed.
	h.emu.ClearFault()
	h.waitWindow("short.example.com")
	r := h.read("short.example.com", nil)
	require.Len(t, r.Warnings, 1)
	require.Contains(t, r.Warnings[0], "certificate expired at")
}

func TestReadOnlyStorageStillServes(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	// A performance standby: storage writes are refused.
	ro := &readOnlyStorage{Storage: h.storage}
	standby := h.newBackend(ro)
	for range 3 {
		resp, err := h.requestOn(standby, ro, logical.ReadOperation, "certs/example.com", nil)
		require.NoError(t, err)
		require.False(t, resp.IsError())
		require.Empty(t, resp.Warnings)
	}
	require.EqualValues(t, 1, h.fileCalls("example.com"), "served from memory after the refused write")
	require.Positive(t, ro.refused)
	require.NotContains(t, h.logs.String(), "cannot write the cache entry")
}

func TestCacheSurvivesRestartWhileNHNDown(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	want := h.read("example.com", nil).Data

	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	restarted := h.newBackend(h.storage)
	resp, err := h.requestOn(restarted, h.storage, logical.ReadOperation, "certs/example.com", nil)
	require.NoError(t, err)
	require.Equal(t, want, resp.Data)
	require.Empty(t, resp.Warnings, "within cache_ttl: served from storage without asking NHN")
	require.EqualValues(t, 1, h.fileCalls("example.com"))
}

// TestBoundMemoryCacheAtMostMax reads more names than the in-memory cache
// may hold: after every read it holds at most cache.max parsed entries,
// every download is still in storage, an evicted name is read back from
// storage without asking NHN, and a name read all along stays in memory
// (least recently used eviction).
//
// The bound is lowered from maxMemoryEntries (4096) to 64 to keep the test
// fast (4,097 downloads would take a minute under -race); the code path is
// the same, as TestBoundMemoryCacheDefaultBound shows for the real bound.
func TestBoundMemoryCacheAtMostMax(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	require.Equal(t, maxMemoryEntries, h.b.cache.max, "Factory sets the documented bound")
	const bound, names = 64, 300
	h.b.cache.resize(bound)
	require.NoError(t, h.emu.Seed("bulk", names))
	name := func(i int) string { return fmt.Sprintf("bulk%05d.example.com", i) }
	hot := name(0)

	largest := 0
	for i := range names {
		h.read(name(i), nil)
		h.read(hot, nil)
		largest = max(largest, h.b.cache.memoryLen())
		require.LessOrEqual(t, h.b.cache.memoryLen(), bound, "after %d names", i+1)
	}
	require.Len(t, h.cacheKeys(), names, "every download is in Vault's storage")
	require.EqualValues(t, names, h.emu.Stats().FileCalls)
	require.NotNil(t, h.b.cache.get(hot, mustSession(h).cfg.Generation), "a name read all along is not evicted")

	// Evicted names come back from storage, not from NHN.
	for i := 1; i <= 10; i++ {
		require.True(t, h.b.cache.get(name(i), mustSession(h).cfg.Generation) == nil, "%s was evicted", name(i))
		h.read(name(i), nil)
	}
	require.EqualValues(t, names, h.emu.Stats().FileCalls, "evicted names were read back from storage")
	require.LessOrEqual(t, h.b.cache.memoryLen(), bound)
	t.Logf("%d names read with the memory bound at %d: at most %d in memory, %d in storage, %d downloads",
		names, bound, largest, len(h.cacheKeys()), h.emu.Stats().FileCalls)
}

// TestBoundMemoryCacheDefaultBound fills the memory cache of a backend as
// Factory makes it with maxMemoryEntries + 1,000 entries (sharing one
// parsed file, as BenchmarkCacheHit does, so that it is quick): it never
// holds more than maxMemoryEntries, and once full it stays full: eviction
// drops the least recently used entry only (golang-lru), not a batch.
func TestBoundMemoryCacheDefaultBound(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)
	st := mustSession(h)
	src := h.b.cache.get("example.com", st.cfg.Generation)
	require.NotNil(t, src)
	require.Equal(t, maxMemoryEntries, h.b.cache.max)

	low := maxMemoryEntries
	for i := range maxMemoryEntries + 1000 {
		h.b.cache.putMemory(&cacheEntry{name: fmt.Sprintf("fill%05d.example.com", i), generation: src.generation,
			file: src.file, bundle: src.bundle, fetchedAt: src.fetchedAt, data: src.data})
		n := h.b.cache.memoryLen()
		require.LessOrEqual(t, n, maxMemoryEntries, "after %d entries", i+1)
		if i > maxMemoryEntries {
			low = min(low, n)
		}
	}
	require.Equal(t, maxMemoryEntries, low, "eviction drops one entry per entry added")
	t.Logf("%d entries put: the memory cache stayed between %d and %d entries", maxMemoryEntries+1000, low, maxMemoryEntries)
}

// TestCacheSlowDownloadDoesNotReplaceNewer holds back a download that NHN
// answered with the old file (v0), rotates the certificate, and has a
// refresh=true read cache the new file (v1); then the held download
// finishes. The cache must keep v1: the next read (within cache_ttl of v1's
// download) must serve v1 without asking NHN, also when the held download
// failed (a failed download must not put its older copy back in memory)
// and NHN is down by then.
//
// Both halves failed before the cache compared download start times
// (keep and putNewer in cache.go): a finished download was stored
// unconditionally, and a failed one put back the entry it started from,
// over the newer entry a concurrent download had stored meanwhile.
func TestCacheSlowDownloadDoesNotReplaceNewer(t *testing.T) {
	for _, c := range []struct {
		id      string
		replace []byte // what the held download brings instead of NHN's file
		nhnDown bool   // NHN is down for the read that follows
	}{
		{id: "older file"},
		{id: "failed download", replace: []byte("not a certificate file"), nhnDown: true},
	} {
		t.Run(c.id, func(t *testing.T) {
			h := newHarness(t)
			const name = "example.com"
			var (
				mu       sync.Mutex
				holdNext bool
				arrived  = make(chan struct{})
				release  = make(chan struct{})
			)
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				held := holdNext && strings.HasSuffix(r.URL.Path, "/certificates/"+name+"/files")
				if held {
					holdNext = false
				}
				mu.Unlock()
				if !held {
					h.emu.ServeHTTP(w, r)
					return
				}
				rec := httptest.NewRecorder()
				h.emu.ServeHTTP(rec, r)
				close(arrived)
				select {
				case <-release:
				case <-time.After(30 * time.Second):
				}
				body := rec.Body.Bytes()
				if c.replace != nil {
					body = c.replace
				}
				w.Header().Set("Content-Type", "application/octet-stream")
				w.WriteHeader(rec.Code)
				_, _ = w.Write(body)
			}))
			t.Cleanup(front.Close)
			h.configure(map[string]any{"endpoint": front.URL, "auth_endpoint": front.URL, "cache_ttl": "1h"})
			h.putChain(name, emulator.ChainOptions{}, emulator.FileOptions{})
			v0 := h.read(name, nil).Data["serial_number"]
			expireCache(h, name)

			mu.Lock()
			holdNext = true
			mu.Unlock()
			held := make(chan *logical.Response, 1)
			go func() {
				resp, _ := h.request(logical.ReadOperation, "certs/"+name, nil)
				held <- resp
			}()
			select {
			case <-arrived:
			case <-time.After(30 * time.Second):
				t.Fatal("the held download never reached NHN")
			}
			rotated, err := h.emu.Rotate(name)
			require.NoError(t, err)
			v1 := emulator.FormatSerial(rotated.Leaf.SerialNumber)
			require.Equal(t, v1, h.read(name, map[string]any{"refresh": true}).Data["serial_number"])
			close(release)
			select {
			case resp := <-held:
				// It may serve what it got, its stale copy, or v1.
				require.NotNil(t, resp)
				require.Contains(t, []any{v0, v1}, resp.Data["serial_number"])
			case <-time.After(30 * time.Second):
				t.Fatal("the held read never finished")
			}

			if c.nhnDown {
				h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
			}
			calls := h.fileCalls(name)
			resp, err := h.request(logical.ReadOperation, "certs/"+name, nil)
			require.NoError(t, err)
			require.Equal(t, v1, resp.Data["serial_number"], "the next read went back to the older certificate")
			require.Empty(t, resp.Warnings)
			require.Equal(t, calls, h.fileCalls(name), "v1 is fresh: no download")
		})
	}
}
