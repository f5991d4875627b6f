package nhncert

import (
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/certutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

func TestMetadataHasEverythingButTheKey(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "2h"})
	ch := h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{IncludeRoot: true})

	before := time.Now().Add(-time.Second)
	resp, err := h.request(logical.ReadOperation, "metadata/example.com", nil)
	require.NoError(t, err)
	require.False(t, resp.IsError())
	md := resp.Data
	require.NotContains(t, md, "private_key")
	require.NotContains(t, stringify(md), "PRIVATE KEY")

	// Same cache: the key read that follows does not download again.
	full := h.read("example.com", nil).Data
	require.EqualValues(t, 1, h.fileCalls("example.com"))
	for k, v := range full {
		if k != "private_key" {
			require.Equal(t, v, md[k], k)
		}
	}
	sum := sha256.Sum256(ch.Leaf.Raw)
	require.Equal(t, certutil.GetHexFormatted(sum[:], ":"), md["fingerprint_sha256"])
	cachedAt, err := time.Parse(time.RFC3339, md["cached_at"].(string))
	require.NoError(t, err)
	require.False(t, cachedAt.Before(before.Truncate(time.Second)))
	expiresAt, err := time.Parse(time.RFC3339, md["cache_expires_at"].(string))
	require.NoError(t, err)
	require.Equal(t, 2*time.Hour, expiresAt.Sub(cachedAt))

	// Before any list, the list's fields are unknown; after one, they show.
	require.Equal(t, "", md["authority"])
	_, err = h.request(logical.ListOperation, "certs/", nil)
	require.NoError(t, err)
	md = h.readPath("metadata/example.com", nil).Data
	listed, _ := h.emu.Get("example.com")
	require.Equal(t, listed.Authority, md["authority"])
	require.Equal(t, listed.SignatureAlgorithm, md["signature_algorithm"])
	require.Equal(t, listed.FileCreationDate, md["file_creation_date"])
	require.Equal(t, listed.ExpirationDate, md["expiration_date"])

	der := h.readPath("metadata/example.com", map[string]any{"format": "der"}).Data
	require.Equal(t, base64.StdEncoding.EncodeToString(ch.Leaf.Raw), der["certificate"])
	require.NotContains(t, der, "private_key")
	require.EqualValues(t, 1, h.fileCalls("example.com"))
}

func TestMetadataWarmsTheKeyRead(t *testing.T) {
	h := configuredHarness(t, nil)
	h.putChain("*.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.readPath("metadata/*.example.com", nil)
	h.read("*.example.com", nil)
	require.EqualValues(t, 1, h.fileCalls("*.example.com"))
}

func TestMetadataSameNameRulesAndErrors(t *testing.T) {
	h := configuredHarness(t, nil)
	for _, name := range []string{"a/b", "..", `a\b`, "a\x01b"} {
		resp, err := h.request(logical.ReadOperation, "metadata/"+name, nil)
		require.NoError(t, err)
		require.True(t, resp.IsError(), name)
	}
	_, err := h.request(logical.ReadOperation, "metadata/missing.example.com", nil)
	require.ErrorContains(t, err, "not found")
	resp, err := h.request(logical.ReadOperation, "metadata/x.example.com", map[string]any{"format": "pem_bundle"})
	require.NoError(t, err)
	require.True(t, resp.IsError(), "no bundle: it would hold the key")
	require.Equal(t, map[string]int64{"missing.example.com": 1}, h.emu.Stats().FileCallsByName,
		"refused names and formats never reach NHN")
}
