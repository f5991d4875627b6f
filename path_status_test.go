package nhncert

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

func TestStatusUnconfigured(t *testing.T) {
	h := newHarness(t)
	st := h.readPath("status", nil).Data
	require.Equal(t, false, st["configured"])
	require.Equal(t, "off", st["state"])
	require.Equal(t, "", st["next_run_at"])
	require.Equal(t, "", st["last_run_started"])
	require.Equal(t, 0, st["cached_in_storage"])
}

// After a run the status says what it did, when, and what is cached; it
// holds no secret.
func TestStatusAfterARun(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "1m", "refresh_interval": "10s"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("other.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)
	h.read("other.example.com", nil)
	h.emu.Remove("other.example.com")

	st := h.readPath("status", nil).Data
	require.Equal(t, "standby", st["state"], "no loop on this node yet")
	require.Equal(t, false, st["refresher_running"])

	require.NoError(t, h.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
	require.Eventually(t, func() bool { return h.b.refresher.nextRunAt.Load() != 0 }, 10*time.Second, 10*time.Millisecond)
	st = h.readPath("status", nil).Data
	require.Equal(t, "waiting", st["state"])
	require.Equal(t, true, st["refresher_running"])
	next, err := time.Parse(time.RFC3339, st["next_run_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(7500*time.Millisecond), next, 6*time.Second, "between 5 and 10 s away")

	// One run, recorded as the loop records it.
	began := time.Now()
	stats, err := h.runErr()
	require.NoError(t, err)
	h.b.recordRun(runReport{started: began, finished: time.Now(), stats: stats})

	st = h.readPath("status", nil).Data
	require.Equal(t, "ok", st["state"])
	require.Equal(t, true, st["configured"])
	require.Equal(t, mustSession(h).cfg.Generation, st["config_generation"])
	require.Equal(t, int64(10), st["refresh_interval"])
	require.Equal(t, int64(60), st["cache_ttl"])
	require.Equal(t, 1, st["last_run_listed"])
	require.Equal(t, 1, st["last_run_removed"])
	require.Equal(t, 0, st["last_run_failed"])
	require.Equal(t, "", st["last_run_error"])
	started, err := time.Parse(time.RFC3339, st["last_run_started"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, began, started, 2*time.Second)
	require.Equal(t, 1, st["cached_in_memory"])
	require.Equal(t, 1, st["cached_in_storage"])
	exp, err := time.Parse(time.RFC3339, st["token_expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), exp, time.Minute, "the emulator's tokens live 24h")

	raw, err := json.Marshal(st)
	require.NoError(t, err)
	h.requireNoSecrets("status", string(raw))

	// A failed run: state and error say so.
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	_, err = h.runErr()
	h.b.recordRun(runReport{started: time.Now(), finished: time.Now(), err: err})
	st = h.readPath("status", nil).Data
	require.Equal(t, "error", st["state"])
	require.Contains(t, st["last_run_error"], "unreachable")
}

func TestStatusWithoutTokenOnV11(t *testing.T) {
	h := configuredHarness(t, map[string]any{"api_version": "v1.1"})
	h.cached("example.com")
	st := h.readPath("status", nil).Data
	require.Equal(t, "", st["token_expires_at"])
}

// A performance standby does not run the refresh, and its status read is
// forwarded to the active node.
func TestStatusIsForwardedFromPerformanceStandbys(t *testing.T) {
	h := newHarness(t)
	p := h.b.Route("status")
	require.NotNil(t, p)
	op := p.Operations[logical.ReadOperation]
	require.True(t, op.Properties().ForwardPerformanceStandby)

	standby := perfStandbyBackend(t, h.storage)
	h.configure(nil)
	require.NoError(t, standby.Initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
	// The framework answers ErrReadOnly on a performance standby: Vault
	// then forwards the request to the active node.
	_, err := h.requestOn(standby, h.storage, logical.ReadOperation, "status", nil)
	require.ErrorIs(t, err, logical.ErrReadOnly)
	// Were it answered here, it would say this node does not run it.
	resp, err := standby.pathStatusRead(context.Background(), &logical.Request{Storage: h.storage}, nil)
	require.NoError(t, err)
	require.Equal(t, false, resp.Data["refresher_running"])
	require.Equal(t, "standby", resp.Data["state"])
}

func TestStatusHelpAndOpenAPI(t *testing.T) {
	h := newHarness(t)
	resp, err := h.request(logical.HelpOperation, "status", nil)
	require.NoError(t, err)
	help := resp.Data["help"].(string)
	require.Contains(t, help, "tidy-status")
	require.Contains(t, help, "jq -e")
	resp, err = h.request(logical.HelpOperation, "", nil)
	require.NoError(t, err)
	raw, err := json.Marshal(resp.Data["openapi"])
	require.NoError(t, err)
	require.Contains(t, string(raw), `"operationId":"nhncert-read-status"`)
	for f := range statusResponseFields {
		require.Contains(t, string(raw), `"`+f+`"`, "the OpenAPI document declares %s", f)
	}
}
