package nhncert

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// heldDownloads is NHN in front of the emulator with a hand on the file
// endpoint: while held, each download has reached NHN and waits until the
// test lets it go (or its request is cancelled). downloads counts the
// downloads that reached NHN.
type heldDownloads struct {
	next      http.Handler
	mu        sync.Mutex
	held      bool
	release   chan struct{}
	arrived   chan struct{}
	downloads atomic.Int64
}

func newHeldDownloads(t *testing.T, next http.Handler) (*heldDownloads, string) {
	hd := &heldDownloads{next: next, release: make(chan struct{}), arrived: make(chan struct{}, 1024)}
	srv := httptest.NewServer(hd)
	t.Cleanup(srv.Close)
	return hd, srv.URL
}

func (hd *heldDownloads) hold() {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	hd.held = true
	hd.release = make(chan struct{})
}

func (hd *heldDownloads) letGo() {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.held {
		hd.held = false
		close(hd.release)
	}
}

func (hd *heldDownloads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/files") || strings.HasSuffix(r.URL.Path, "/certificate-files") {
		hd.downloads.Add(1)
		hd.mu.Lock()
		held, release := hd.held, hd.release
		hd.mu.Unlock()
		if held {
			hd.arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
	}
	hd.next.ServeHTTP(w, r)
}

// waitArrived waits (bounded) until n held downloads reached NHN.
func (hd *heldDownloads) waitArrived(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-hd.arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d downloads reached NHN within 10 s", i, n)
		}
	}
}

// gateHarness is a harness whose config points at a heldDownloads NHN.
func gateHarness(t *testing.T) (*harness, *heldDownloads, map[string]any) {
	h := newHarness(t)
	hd, url := newHeldDownloads(t, h.emu)
	cfg := map[string]any{"endpoint": url, "auth_endpoint": url, "refresh_interval": 0}
	return h, hd, cfg
}

// heldRead starts a read of certs/name whose download NHN holds (hd), and
// returns once the download has arrived; the answer comes on the channel
// after hd.letGo.
func heldRead(t *testing.T, h *harness, hd *heldDownloads, name string) <-chan error {
	t.Helper()
	hd.hold()
	read := readAsync(h, name)
	hd.waitArrived(t, 1)
	return read
}

// readAsync reads certs/name in the background; the answer (or error)
// arrives on the channel.
func readAsync(h *harness, name string) <-chan error {
	out := make(chan error, 1)
	go func() {
		resp, err := h.b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.ReadOperation, Path: "certs/" + name, Storage: h.storage, MountPoint: "nhncert/",
		})
		if err == nil && resp != nil && resp.IsError() {
			err = resp.Error()
		}
		out <- err
	}()
	return out
}

func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the read did not return within 20 s")
		return nil
	}
}

// A read whose download is in flight when DELETE config returns stores
// nothing: after the delete and the same config written again, storage
// holds no certificate (issue 16, point 1: it held one).
func TestConfigDeleteDropsDownloadInFlight(t *testing.T) {
	h, hd, cfg := gateHarness(t)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.configure(cfg)

	read := heldRead(t, h, hd, "example.com")
	_, err := h.request(logical.DeleteOperation, "config", nil)
	require.NoError(t, err)
	require.Empty(t, h.cacheKeys(), "storage right after the delete")
	hd.letGo()
	require.Error(t, waitErr(t, read), "the read whose config was deleted must not be served")

	h.configure(cfg)
	require.Empty(t, h.cacheKeys(), "a copy of the deleted config was stored after the delete")
	st := h.readPath("status", nil)
	require.EqualValues(t, 0, st.Data["cached_in_storage"])
	require.EqualValues(t, 0, st.Data["cached_in_memory"])
}

// A download of the old config that lands after an identity change never
// replaces or removes the new config's copy, in memory, index or storage.
func TestOldConfigDownloadLandingLateKeepsNewCopy(t *testing.T) {
	h, hd, cfg := gateHarness(t)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.configure(cfg)

	old := heldRead(t, h, hd, "example.com")
	// Another endpoint string for the same NHN (the recorder in front of
	// the emulator): a new upstream identity, so a new generation.
	resp, err := h.request(logical.UpdateOperation, "config", map[string]any{"endpoint": h.srv.URL, "auth_endpoint": h.srv.URL})
	require.NoError(t, err)
	require.False(t, resp != nil && resp.IsError(), "%v", resp)
	gen := mustSession(h).cfg.Generation
	h.read("example.com", nil)

	hd.letGo()
	// The old read was cancelled with its config and went on once with
	// the new one: whatever it answered, the old copy was never stored.
	_ = waitErr(t, old)
	keys := h.cacheKeys()
	require.Len(t, keys, 1)
	se, err := readStoredEntry(context.Background(), h.storage, "example.com")
	require.NoError(t, err)
	require.Equal(t, gen, se.Generation, "the stored copy is the new config's")
	require.NotNil(t, h.b.cache.get("example.com", gen), "the new copy is in memory")
}

// A background run in flight when the config is deleted makes no download
// after the delete returns, and its downloads in flight are cancelled.
func TestConfigDeleteStopsBackgroundRun(t *testing.T) {
	h, hd, cfg := gateHarness(t)
	for _, n := range []string{"a.example", "b.example", "c.example", "d.example"} {
		h.putChain(n, emulator.ChainOptions{}, emulator.FileOptions{})
	}
	h.configure(cfg)
	_, _ = h.request(logical.ListOperation, "certs/", nil) // listed once: the copies know their list entry
	for _, n := range []string{"a.example", "b.example", "c.example", "d.example"} {
		h.read(n, nil)
	}
	for _, n := range []string{"a.example", "b.example", "c.example", "d.example"} {
		_, err := h.emu.Rotate(n)
		require.NoError(t, err)
	}
	sess := mustSession(h)
	select { // the config write's wake-up, for a loop this test does not run
	case <-h.b.refresher.wake:
	default:
	}
	hd.hold()
	run := make(chan error, 1)
	go func() {
		_, _, err := h.b.refreshRun(context.Background(), h.storage, sess, time.Now().Add(time.Minute))
		run <- err
	}()
	hd.waitArrived(t, 2) // two of the four rotated downloads (paced, about 1/s)
	_, err := h.request(logical.DeleteOperation, "config", nil)
	require.NoError(t, err)
	after := hd.downloads.Load()
	select {
	case <-run: // the cancelled run returns without being let go
	case <-time.After(10 * time.Second):
		t.Fatal("the background run did not stop within 10 s of the delete")
	}
	hd.letGo()
	require.Equal(t, after, hd.downloads.Load(), "downloads started after the delete returned")
	require.Empty(t, h.cacheKeys())
}

// After Cleanup (unmount) no goroutine of the mount is left and nothing is
// written: a download in flight is cancelled and waited for.
func TestCleanupLeavesNothingRunning(t *testing.T) {
	h, hd, cfg := gateHarness(t)
	before := goleak.IgnoreCurrent()
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	cfg["refresh_interval"] = 1
	h.configure(cfg)
	require.NoError(t, h.b.initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
	read := heldRead(t, h, hd, "example.com")
	h.b.clean(context.Background())
	require.Error(t, waitErr(t, read))
	hd.letGo()
	require.Empty(t, h.cacheKeys(), "written after Cleanup")
	goleak.VerifyNone(t, before, goleak.IgnoreTopFunction("net/http.(*conn).serve"))
}
