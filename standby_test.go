package nhncert

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/require"
)

// Performance standbys (Vault Enterprise) answer reads from replicated
// storage, which refuses their writes with logical.ErrReadOnly.

// TestPerformanceStandby runs a second backend on storage that
// refuses every write (readOnlyStorage, as on a performance standby) over
// the storage of the active one:
//
//   - an uncached name is downloaded and served from memory; nothing is
//     written and nothing is logged as a failure;
//   - with NHN down, that memory copy is served with a stale warning;
//   - a config write or delete fails with logical.ErrReadOnly (Vault
//     forwards such a request to the active node; the path also sets
//     ForwardPerformanceStandby) and changes nothing on the standby;
//   - NHN saying 52000 drops the memory copy (the refused storage delete
//     is ignored) and answers 404;
//   - when the active node caches a newer copy, Invalidate makes the
//     standby serve it from storage without a download of its own.
func TestPerformanceStandby(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	ctx := context.Background()
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("shared.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	ro := &readOnlyStorage{Storage: h.storage}
	standby := h.newBackend(ro)
	read := func(name string, data map[string]any) (*logical.Response, error) {
		return h.requestOn(standby, ro, logical.ReadOperation, "certs/"+name, data)
	}
	st, err := standby.session(ctx, ro)
	require.NoError(t, err)

	resp, err := read("example.com", nil)
	require.NoError(t, err)
	require.Empty(t, resp.Warnings)
	serial := resp.Data["serial_number"]
	require.Positive(t, ro.refused, "the standby tried to store the download")
	require.Empty(t, h.cacheKeys(), "nothing was written")
	require.Equal(t, 1, standby.cache.memoryLen())
	require.NotContains(t, h.logs.String(), "cannot write the cache entry")
	// No refresh runs here: readers come back within refresh_interval (to
	// see what the active node's run stores), not at the copy's expiry.
	cfg := st.cfg
	require.Positive(t, cfg.RefreshInterval)
	require.Less(t, cfg.RefreshInterval, cfg.CacheTTL, "the defaults: a check every refresh_interval, a copy kept for cache_ttl")
	require.LessOrEqual(t, resp.Data["ttl"], int64(cfg.RefreshInterval/time.Second), "ttl on a performance standby")

	// NHN down: the memory copy, with a warning.
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	resp, err = read("example.com", map[string]any{"refresh": true})
	require.NoError(t, err)
	require.Equal(t, serial, resp.Data["serial_number"])
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "may be stale")
	h.emu.ClearFault()
	calls := h.fileCalls("example.com")

	// Config writes are for the active node.
	before, err := readConfig(ctx, h.storage)
	require.NoError(t, err)
	for _, op := range []logical.Operation{logical.UpdateOperation, logical.DeleteOperation} {
		_, err = h.requestOn(standby, ro, op, "config", map[string]any{"app_key": "other-app", "cache_ttl": "5m"})
		require.ErrorIs(t, err, logical.ErrReadOnly, "%s config on a performance standby", op)
	}
	after, err := readConfig(ctx, h.storage)
	require.NoError(t, err)
	require.Equal(t, before, after)
	require.Same(t, st, standby.current.Load(), "the refused writes left the standby's state alone")
	resp, err = read("example.com", nil)
	require.NoError(t, err)
	require.Equal(t, serial, resp.Data["serial_number"], "still served from memory")
	require.Equal(t, calls, h.fileCalls("example.com"), "within cache_ttl: no download")

	// NHN: the certificate is gone.
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultResult, Target: emulator.TargetFiles, ResultCode: emulator.ResultNameNotExist})
	_, err = read("example.com", map[string]any{"refresh": true})
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded), "%v", err)
	require.Equal(t, http.StatusNotFound, coded.Code())
	require.Zero(t, standby.cache.memoryLen())
	h.emu.ClearFault()

	// The active node caches a newer copy; the standby hears of it.
	resp, err = read("shared.example.com", nil)
	require.NoError(t, err)
	old := resp.Data["serial_number"]
	rotated, err := h.emu.Rotate("shared.example.com")
	require.NoError(t, err)
	newSerial := emulator.FormatSerial(rotated.Leaf.SerialNumber)
	require.Equal(t, newSerial, h.read("shared.example.com", map[string]any{"refresh": true}).Data["serial_number"])
	require.NotEqual(t, old, newSerial)
	calls = h.fileCalls("shared.example.com")
	standby.invalidate(ctx, storageKey("shared.example.com"))
	resp, err = read("shared.example.com", nil)
	require.NoError(t, err)
	require.Equal(t, newSerial, resp.Data["serial_number"], "the active node's copy, from storage")
	require.Equal(t, calls, h.fileCalls("shared.example.com"), "no download of the standby's own")
	h.requireNoSecrets("logs", h.logs.String())
}

// perfStandbyBackend is a backend over s whose system view says it runs on
// a performance standby (WriteSafeReplicationState is false), cleaned up
// when the test ends.
func perfStandbyBackend(t *testing.T, s logical.Storage) *backend {
	t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	sys := logical.TestSystemView()
	sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	conf.System = sys
	b, err := Factory(context.Background(), conf)
	require.NoError(t, err)
	standby := b.(*backend)
	t.Cleanup(func() { standby.clean(context.Background()) })
	return standby
}
