package nhncert

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/require"
)

// rewriteFormat sets the "format" of the stored entry at key (removing it
// when format is 0, as v0.1.0 wrote entries).
func rewriteFormat(t *testing.T, s logical.Storage, key string, format int) {
	t.Helper()
	ctx := context.Background()
	raw, err := s.Get(ctx, key)
	require.NoError(t, err)
	require.NotNil(t, raw, "no storage entry %s", key)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw.Value, &m))
	if format == 0 {
		delete(m, "format")
	} else {
		m["format"] = format
	}
	raw.Value, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, s.Put(ctx, raw))
}

// TestStorageFormat: every entry kind records the format; entries without
// one (v0.1.0's) are read; an entry of a newer format is refused with an
// error naming both formats, and a certificate's newer entry is neither
// served nor overwritten by a download.
func TestStorageFormat(t *testing.T) {
	h := newHarness(t)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.configure(nil)
	resp, err := h.request(logical.UpdateOperation, "passphrases/example.com", map[string]any{"passphrase": "correct horse"})
	require.NoError(t, err)
	require.False(t, resp != nil && resp.IsError(), "passphrase write: %v", resp)
	h.read("example.com", nil)

	ctx := context.Background()
	keys := []string{configPath, storageKey("example.com"), passphraseKey("example.com")}
	for _, k := range keys {
		raw, err := h.storage.Get(ctx, k)
		require.NoError(t, err)
		require.NotNil(t, raw, "no storage entry %s", k)
		require.True(t, strings.HasPrefix(string(raw.Value), `{"format":1,`), "%s does not record format 1: %.40s", k, raw.Value)
		h.requireSealWrapped(k)
	}

	// As v0.1.0 wrote them: no format. A fresh backend reads them all.
	for _, k := range keys {
		rewriteFormat(t, h.storage, k, 0)
	}
	b := h.newBackend(h.storage)
	calls := h.fileCalls("example.com")
	r, err := h.requestOn(b, h.storage, logical.ReadOperation, "certs/example.com", nil)
	require.NoError(t, err)
	require.False(t, r.IsError(), "reading v0.1.0's entries: %v", r.Error())
	require.Equal(t, calls, h.fileCalls("example.com"), "v0.1.0's cache entry was downloaded again")
	pe, err := readPassphrase(ctx, h.storage, "example.com")
	require.NoError(t, err)
	require.Equal(t, "correct horse", pe.Passphrase)

	wantErr := func(what string, err error) {
		t.Helper()
		require.Error(t, err, what)
		require.ErrorIs(t, err, errNewerStorageFormat, what)
		require.Contains(t, err.Error(), "has format 2, newer than format 1", what)
		require.NotContains(t, err.Error(), "correct horse", what)
	}

	// A newer build's certificate entry: refused, not downloaded over.
	rewriteFormat(t, h.storage, storageKey("example.com"), 2)
	before, err := h.storage.Get(ctx, storageKey("example.com"))
	require.NoError(t, err)
	b = h.newBackend(h.storage)
	_, err = readStoredEntry(ctx, h.storage, "example.com")
	wantErr("readStoredEntry", err)
	r, err = h.requestOn(b, h.storage, logical.ReadOperation, "certs/example.com", nil)
	if err == nil {
		require.True(t, r != nil && r.IsError(), "a cache entry of format 2 was served: %v", r)
		err = r.Error()
	}
	require.Contains(t, err.Error(), "has format 2, newer than format 1", "reading a certificate whose entry has format 2")
	after, err := h.storage.Get(ctx, storageKey("example.com"))
	require.NoError(t, err)
	require.Equal(t, before.Value, after.Value, "the format 2 entry was overwritten")
	require.Equal(t, calls, h.fileCalls("example.com"), "a certificate whose entry has format 2 was downloaded")

	// A newer build's passphrase and config.
	rewriteFormat(t, h.storage, passphraseKey("example.com"), 2)
	_, err = readPassphrase(ctx, h.storage, "example.com")
	wantErr("readPassphrase", err)
	_, err = listPassphraseNames(ctx, h.storage)
	wantErr("listPassphraseNames", err)
	rewriteFormat(t, h.storage, configPath, 2)
	_, err = readConfig(ctx, h.storage)
	wantErr("readConfig", err)
	b = h.newBackend(h.storage)
	r, err = h.requestOn(b, h.storage, logical.ReadOperation, "config", nil)
	if err == nil {
		require.True(t, r != nil && r.IsError(), "a config of format 2 was read: %v", r)
		err = r.Error()
	}
	require.Contains(t, err.Error(), "has format 2, newer than format 1", "reading a config of format 2")
}
