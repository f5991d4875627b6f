package nhncert

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// CONTRACT: when DELETE config returns, "no request to NHN that carries
// [the old credentials], or a token issued for them, starts after the
// delete returns (a token exchange in flight included)". A read whose
// token exchange NHN keeps failing (and which retries it) is in flight
// when the config is deleted: after the delete returns NHN sees no
// request, and the read ends at once rather than after its retries.
func TestDeleteStopsTokenExchangeInFlight(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"refresh_interval": "0"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown, Target: emulator.TargetToken})
	calls := func() int64 {
		st := h.emu.Stats()
		return st.TokenCalls + st.ListCalls + st.FileCalls
	}
	done := make(chan time.Time, 1)
	go func() {
		_, _ = h.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation,
			Path: "certs/example.com", Storage: h.storage, MountPoint: "nhncert/"})
		done <- time.Now()
	}()
	require.Eventually(t, func() bool { return h.emu.Stats().TokenCalls >= 1 }, 10*time.Second, time.Millisecond)
	_, err := h.request(logical.DeleteOperation, "config", nil)
	require.NoError(t, err)
	deleted, after := time.Now(), calls()
	var ended time.Time
	select {
	case ended = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the read in flight did not end within 30 s of the delete")
	}
	require.Equal(t, after, calls(), "requests reached NHN after the config delete returned")
	require.Less(t, ended.Sub(deleted), 2*time.Second, "the read in flight went on retrying with the deleted credentials")
}
