package nhncert

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

// TestEventsUnavailableIsSilent rotates a certificate under a backend
// that Vault gave no event sender (as where events are unavailable): the
// read that brings the new file succeeds with no warning and nothing is
// logged about events, at any level. The same rotation under the
// harness's backend sends the event, so the code path that would complain
// is the one that ran.
func TestEventsUnavailableIsSilent(t *testing.T) {
	h := configuredHarness(t, nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})

	logs := &testkit.SyncBuffer{}
	conf := logical.TestBackendConfig()
	conf.StorageView = h.storage
	conf.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs})
	lb, err := Factory(context.Background(), conf) // no EventsSender
	require.NoError(t, err)
	silent := lb.(*backend)
	t.Cleanup(func() { silent.clean(context.Background()) })

	for _, b := range []*backend{h.b, silent} {
		resp, err := h.requestOn(b, h.storage, logical.ReadOperation, "certs/example.com", nil)
		require.NoError(t, err)
		before := resp.Data["serial_number"]
		rotated, err := h.emu.Rotate("example.com")
		require.NoError(t, err)
		resp, err = h.requestOn(b, h.storage, logical.ReadOperation, "certs/example.com", map[string]any{"refresh": true})
		require.NoError(t, err)
		require.False(t, resp.IsError())
		require.NotEqual(t, before, resp.Data["serial_number"])
		require.Equal(t, emulator.FormatSerial(rotated.Leaf.SerialNumber), resp.Data["serial_number"])
		require.Empty(t, resp.Warnings)
	}
	require.Len(t, h.events.sent(), 1, "the harness's backend sent the event of its rotation")
	require.NotContains(t, logs.String(), "event", "no event sender: nothing is said about events")
	require.NotContains(t, logs.String(), "[WARN]")
	require.NotContains(t, logs.String(), "[ERROR]")
}
