package nhncert

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/require"
)

// On v1.1 the list gives no domains: the names come from the files, read
// once per file, paced, never for a certificate the list shows expired.
func TestHostsV11LearnsNamesOncePerFile(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(map[string]any{"api_version": "v1.1"})
	var pauses atomic.Int64
	var gaps sync.Map
	h.b.refresher.pace = func(ctx context.Context, _ <-chan struct{}, d time.Duration) pauseResult {
		pauses.Add(1)
		gaps.Store(d, true)
		return paused
	}
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))
	st := h.emu.Stats()
	require.Equal(t, map[string]int64{"example.com": 1, "example.com-2027": 1, "*.example.com": 1, "other.org": 1}, st.FileCallsByName,
		"every unexpired file read once; the expired one never")
	require.Equal(t, int64(3), pauses.Load(), "paced: a pause between reads")
	gaps.Range(func(k, _ any) bool {
		require.Equal(t, time.Second, k.(time.Duration), "the background refresh's rate for 4 certificates at cache_ttl 1h: its floor, one a second")
		return true
	})

	// Other hosts: nothing read again.
	require.Equal(t, "*.example.com", h.hostChosen("api.example.com", nil))
	require.Equal(t, "other.org", h.hostChosen("other.org", nil))
	_, msg := h.hostFails("nothing.example.org", nil)
	require.Contains(t, msg, "0 candidate(s)")
	require.Equal(t, st.FileCallsByName, h.emu.Stats().FileCallsByName)

	// Kept with the cached copy: a restarted Vault reads them from storage,
	// not from NHN.
	h.b.clean(context.Background())
	h.b = h.newBackend(h.storage)
	h.noRetryWait()
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))
	require.Equal(t, st.FileCallsByName, h.emu.Stats().FileCallsByName)

	// A file the list shows changed is learnt again.
	h.putChain("other.org", emulator.ChainOptions{DNSNames: []string{"other.org", "www.example.com"}, NotAfter: time.Now().Add(999 * 24 * time.Hour)}, emulator.FileOptions{})
	_, err := h.request("read", "hosts/www.example.com", map[string]any{"refresh": true})
	require.NoError(t, err)
	require.Equal(t, "other.org", h.hostChosen("www.example.com", nil))
	require.Equal(t, int64(3), h.emu.Stats().FileCallsByName["other.org"], "learnt again, then downloaded again as the one chosen by refresh=true")
}

// A cold lookup on v1.1 waits for its learning pass up to a bound, then
// answers 503 saying how far the pass is; the pass goes on, and a later
// lookup finds its work.
func TestHostsV11ColdLookupIsBounded(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(map[string]any{"api_version": "v1.1"})
	old := hostsLearnWait
	hostsLearnWait = 200 * time.Millisecond
	t.Cleanup(func() { hostsLearnWait = old })
	release := make(chan struct{})
	h.b.refresher.pace = func(ctx context.Context, _ <-chan struct{}, d time.Duration) pauseResult {
		select {
		case <-release:
			return paused
		case <-ctx.Done():
			return pauseEnd
		}
	}
	code, msg := h.hostFails("www.example.com", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, msg, "1 of 4 read so far")
	require.Equal(t, int64(1), h.emu.Stats().FileCalls)

	close(release)
	hostsLearnWait = 10 * time.Second
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))
	require.Equal(t, int64(4), h.emu.Stats().FileCalls, "the pass went on; nothing read twice")
}

// The names learnt on v1.1 are kept with the cached copy (dns_names in
// storage), so that a restarted Vault, or another node, finds them there:
// no learning pass, no file read again.
func TestHostsV11NamesKeptWithTheCachedCopy(t *testing.T) {
	h := newHarness(t)
	chains := hostsFixture(h)
	h.configure(map[string]any{"api_version": "v1.1"})
	h.b.refresher.pace = func(context.Context, <-chan struct{}, time.Duration) pauseResult { return paused }
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))
	for name, ch := range chains {
		se, err := readStoredEntry(context.Background(), h.storage, name)
		require.NoError(t, err, name)
		if name == "example.com-old" {
			require.Nil(t, se, "the list shows it expired: never downloaded")
			continue
		}
		require.NotNil(t, se, name)
		require.Equal(t, ch.Leaf.DNSNames, se.DNSNames, "%s: its leaf's names are stored with it", name)
	}
	files := h.emu.Stats().FileCallsByName
	const passLog = "learnt the host names of certificate files"
	passes := strings.Count(h.logs.String(), passLog)
	require.Equal(t, 1, passes, "one learning pass")

	h.b.clean(context.Background())
	h.b = h.newBackend(h.storage)
	h.noRetryWait()
	var pauses atomic.Int64
	h.b.refresher.pace = func(context.Context, <-chan struct{}, time.Duration) pauseResult {
		pauses.Add(1)
		return paused
	}
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))
	require.Equal(t, "*.example.com", h.hostChosen("api.example.com", nil))
	require.Zero(t, pauses.Load(), "no learning pass after a restart: the names come with the stored copies")
	require.Equal(t, passes, strings.Count(h.logs.String(), passLog), "no learning pass after a restart")
	require.Equal(t, files, h.emu.Stats().FileCallsByName)
}

// A copy stored by a version that did not record dns_names: its names are
// learnt again from storage, not from NHN.
func TestHostsV11LearnsFromCopiesStoredWithoutNames(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(map[string]any{"api_version": "v1.1"})
	h.b.refresher.pace = func(context.Context, <-chan struct{}, time.Duration) pauseResult { return paused }
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))
	files := h.emu.Stats().FileCallsByName
	ctx := context.Background()
	for _, name := range []string{"example.com", "example.com-2027", "*.example.com", "other.org"} {
		se, err := readStoredEntry(ctx, h.storage, name)
		require.NoError(t, err)
		require.NotNil(t, se, name)
		se.DNSNames = nil
		require.NoError(t, writeStoredEntry(ctx, h.storage, se))
	}

	h.b.clean(ctx)
	h.b = h.newBackend(h.storage)
	h.noRetryWait()
	h.b.refresher.pace = func(context.Context, <-chan struct{}, time.Duration) pauseResult { return paused }
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))
	require.Equal(t, "*.example.com", h.hostChosen("api.example.com", nil))
	require.Equal(t, files, h.emu.Stats().FileCallsByName, "learnt from the stored copies")
}
