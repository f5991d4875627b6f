package nhncert

import (
	"context"
	"net/http"
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
