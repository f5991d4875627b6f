package nhncert

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// A node that lost leadership but does not know it yet (its Vault was
// paused past the election and resumed; its replication state still says
// it may write) starts no run and makes no call to NHN for one, though
// its timer fires: the claim it writes first is refused, as raft refuses
// a deposed leader's write. CONTRACT: "a node that has lost leadership
// ... starts no run and makes no call to NHN for one, even if its timer
// fired while it was away".
func TestDeposedNodeStartsNoRun(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"refresh_interval": "1s"})
	h.b.jitter = func() float64 { return 0 }
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)
	lists, files := h.emu.Stats().ListCalls, h.emu.Stats().FileCalls

	deposed := &readOnlyStorage{Storage: h.storage}
	require.NoError(t, h.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: deposed}))
	// Interval 1 s, jitter 0: timers fire after 0.5 s, then every 0.9 s.
	require.Eventually(t, func() bool { return h.b.refresher.ticks.Load() >= 3 }, 30*time.Second, 10*time.Millisecond)
	require.Zero(t, h.b.refresher.ran.Load(), "runs started on a node that cannot write")
	require.Equal(t, lists, h.emu.Stats().ListCalls, "lists of NHN from a node that cannot write")
	require.Equal(t, files, h.emu.Stats().FileCalls, "downloads from a node that cannot write")
	require.Contains(t, h.logs.String(), "could not confirm it is still the active one")

}

// A run starts only if its timer fired about when planned: one that fired
// far later (the process or its storage call stalled) looks again first.
func TestLateTimerSlack(t *testing.T) {
	require.Equal(t, 2*time.Second, lateTimerSlack(time.Second))
	require.Equal(t, 30*time.Second, lateTimerSlack(5*time.Minute))
}
