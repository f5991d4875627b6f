package nhncert

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/pause"
)

// pauseClock is the monotonic clock of a test's pause detector: it moves
// only when the test says, so a pause is a step of it.
type pauseClock struct{ t atomic.Int64 }

func (c *pauseClock) now() time.Duration  { return time.Duration(c.t.Load()) }
func (c *pauseClock) add(d time.Duration) { c.t.Add(int64(d)) }

// withPauses gives h's backend a detector on a clock the test moves.
func withPauses(h *harness) *pauseClock {
	c := &pauseClock{}
	h.b.resumed = pause.New(pause.Threshold, c.now).NewGate()
	return c
}

// countingStorage counts the writes made through it.
type countingStorage struct {
	logical.Storage
	puts atomic.Int64
}

func (c *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	c.puts.Add(1)
	return c.Storage.Put(ctx, e)
}

// refusingStorage refuses writes from when refuse is set, as raft refuses
// those of a leader that lost its quorum.
type refusingStorage struct {
	logical.Storage
	refuse atomic.Bool
}

func (r *refusingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if r.refuse.Load() {
		return logical.ErrReadOnly
	}
	return r.Storage.Put(ctx, e)
}

// The chaos run's C1: the active node was paused past an election, the new
// active node acknowledged a config delete, and the resumed node answered
// a read from memory before Vault stepped it down. After a pause a read
// first confirms the node is still the active one (a write a deposed raft
// leader cannot make) and answers 503 if it cannot; once confirmed, reads
// write nothing until the next pause. CONTRACT: "When DELETE
// nhncert/config ... returns, nothing cached under the old config ... can
// be served".
func TestPausedNodeConfirmsBeforeServingFromMemory(t *testing.T) {
	h := configuredHarness(t, nil)
	clock := withPauses(h)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)
	files := h.fileCalls("example.com")

	// Paused past the election: its state still says active, its writes
	// are refused.
	clock.add(10 * time.Second)
	deposed := &readOnlyStorage{Storage: h.storage}
	for _, path := range []string{"certs/example.com", "metadata/example.com", "hosts/example.com"} {
		resp, err := h.requestOn(h.b, deposed, logical.ReadOperation, path, nil)
		var coded logical.HTTPCodedError
		require.True(t, errors.As(err, &coded), "%s after the pause: %v %v", path, resp, err)
		require.Equal(t, http.StatusServiceUnavailable, coded.Code())
		require.Contains(t, err.Error(), "may have lost leadership); retry")
		require.Nil(t, resp, "%s served by a node that could not confirm it leads", path)
	}
	require.Positive(t, deposed.refused)
	require.Equal(t, files, h.fileCalls("example.com"))

	// Still the active one (its write goes through): served, and no
	// further write until the next pause.
	counted := &countingStorage{Storage: h.storage}
	for range 5 {
		resp, err := h.requestOn(h.b, counted, logical.ReadOperation, "certs/example.com", nil)
		require.NoError(t, err)
		require.False(t, resp.IsError())
		clock.add(200 * time.Millisecond)
	}
	require.EqualValues(t, 1, counted.puts.Load(), "one confirmation for one pause")
	require.Equal(t, files, h.fileCalls("example.com"), "served from memory")

	clock.add(3 * time.Second)
	_, err := h.requestOn(h.b, counted, logical.ReadOperation, "certs/example.com", nil)
	require.NoError(t, err)
	require.EqualValues(t, 2, counted.puts.Load(), "the next pause is confirmed again")
}

// The chaos run's C4: a background run under way on a node paused past an
// election went on downloading when resumed. A run that sees a pause
// between its steps claims again before its next call to NHN and stops if
// it cannot. CONTRACT: "a node that has lost leadership ... makes no call
// to NHN for one".
func TestRunPausedMidwayStopsBeforeItsNextCall(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1m", "refresh_interval": "10s"})
	names := h.seededListedAged(5, 55*time.Second)
	clock := withPauses(h)
	h.emu.ResetStats()

	s := &refusingStorage{Storage: h.storage}
	h.b.refresher.pace = func(ctx context.Context, _ <-chan struct{}, _ time.Duration) pauseResult {
		// Stopped while waiting for the first download, deposed meanwhile.
		clock.add(10 * time.Second)
		s.refuse.Store(true)
		return paused
	}
	sess := mustSession(h)
	stats, _, err := h.b.refreshRun(context.Background(), s, sess, time.Now().Add(sess.cfg.RefreshInterval))
	require.ErrorIs(t, err, errLostLeadership)
	require.EqualValues(t, 1, h.emu.Stats().ListCalls)
	require.Zero(t, h.emu.Stats().FileCalls, "downloads by a node that lost leadership mid-run")
	require.Equal(t, len(names), stats.deferred)

	// A pause that the node survives (its claim goes through): the run goes on.
	s.refuse.Store(false)
	h.b.refresher.pace = func(context.Context, <-chan struct{}, time.Duration) pauseResult {
		clock.add(10 * time.Second)
		return paused
	}
	stats, _, err = h.b.refreshRun(context.Background(), s, sess, time.Now().Add(sess.cfg.RefreshInterval))
	require.NoError(t, err)
	require.Equal(t, len(names), stats.refreshed)
}

// A paced wait that ends far later than planned counts as a pause even
// when the detector's clock did not see one (a starved process).
func TestRunLatePaceIsAPause(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1m", "refresh_interval": "10s"})
	// Rotated upstream: downloaded at once, their waits planned as none.
	for _, name := range h.seededListedAged(3, 0) {
		h.relist(name, "2099-01-01")
	}
	withPauses(h)
	h.emu.ResetStats()
	s := &refusingStorage{Storage: h.storage}
	h.b.refresher.pace = func(_ context.Context, _ <-chan struct{}, d time.Duration) pauseResult {
		time.Sleep(max(d, 0) + pause.Threshold + 200*time.Millisecond)
		s.refuse.Store(true)
		return paused
	}
	sess := mustSession(h)
	_, _, err := h.b.refreshRun(context.Background(), s, sess, time.Now().Add(sess.cfg.RefreshInterval))
	require.ErrorIs(t, err, errLostLeadership)
	require.Zero(t, h.emu.Stats().FileCalls)
}

// A hosts learning pass (v1.1: names from the files, paced) goes on in the
// background after the read that began it; paused past an election, it
// stops before its next download as a run does.
func TestHostsLearnPassStopsAfterAPauseItCannotConfirm(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(map[string]any{"api_version": "v1.1"})
	clock := withPauses(h)
	s := &refusingStorage{Storage: h.storage}
	h.b.refresher.pace = func(context.Context, <-chan struct{}, time.Duration) pauseResult {
		clock.add(10 * time.Second)
		s.refuse.Store(true)
		return paused
	}
	_, _ = h.requestOn(h.b, s, logical.ReadOperation, "hosts/www.example.com", nil)
	require.EqualValues(t, 1, h.emu.Stats().FileCalls, "downloads after a pause the node could not confirm")
}
