package nhncert

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

func TestListKeysAndKeyInfo(t *testing.T) {
	h := newHarness(t, func(o *emulator.Options) { o.MaxPageSize = 10 })
	h.configure(nil)
	// One clock for the certificate's dates and the list's expires_in_days,
	// so that the count does not depend on when the test runs.
	now := time.Now()
	h.b.now = func() time.Time { return now }
	require.NoError(t, h.emu.Seed("bulk", 35))
	h.putChain("*.example.com", emulator.ChainOptions{
		DNSNames:  []string{"*.example.com", "example.com"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 0, 90),
	}, emulator.FileOptions{})
	h.putChain("expired.example.com", emulator.ChainOptions{
		NotBefore: time.Now().Add(-100 * 24 * time.Hour), NotAfter: time.Now().Add(-10 * 24 * time.Hour),
	}, emulator.FileOptions{})

	resp, err := h.request(logical.ListOperation, "certs/", nil)
	require.NoError(t, err)
	keys := resp.Data["keys"].([]string)
	require.Len(t, keys, 36, "every page, expired left out by default")
	require.Equal(t, "*.example.com", keys[0])
	require.Equal(t, "bulk00000.example.com", keys[1])
	require.IsNonDecreasing(t, keys)

	info := resp.Data["key_info"].(map[string]any)
	require.Len(t, info, 36)
	wild := info["*.example.com"].(map[string]any)
	require.Equal(t, 90, wild["expires_in_days"], "the leaf expires 90 days from now")
	delete(wild, "expires_in_days")
	meta, _ := h.emu.Get("*.example.com")
	require.Equal(t, map[string]any{
		"authority":           meta.Authority,
		"domains":             []string{"*.example.com", "example.com"},
		"signature_algorithm": meta.SignatureAlgorithm,
		"file_creation_date":  meta.FileCreationDate,
		"expiration_date":     meta.ExpirationDate,
		"certificate_id":      meta.ID,
	}, wild)
	require.Regexp(t, `^\d{4}-\d{2}-\d{2}$`, wild["expiration_date"])
	require.Zero(t, h.emu.Stats().FileCalls, "listing downloads no certificate file")

	for status, want := range map[string]int{"all": 37, "ALL": 37, "Expired": 1, "unexpired": 36} {
		resp, err := h.request(logical.ListOperation, "certs/", map[string]any{"status": status})
		require.NoError(t, err)
		require.Len(t, resp.Data["keys"], want, status)
	}
	resp, err = h.request(logical.ListOperation, "certs/", map[string]any{"status": "valid"})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), `status must be "all", "expired" or "unexpired"`)
}

func TestListV11HasEmptyDomains(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"api_version": "v1.1"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	resp, err := h.request(logical.ListOperation, "certs", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"example.com"}, resp.Data["keys"])
	entry := resp.Data["key_info"].(map[string]any)["example.com"].(map[string]any)
	require.Equal(t, []string{}, entry["domains"])
	require.Zero(t, h.emu.Stats().TokenIssued)
}

func TestListLeavesOutUnservableNames(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("example.com (new)", emulator.ChainOptions{}, emulator.FileOptions{})
	for _, n := range []string{"bad/name", "..", `back\slash`, "bell\x07", strings.Repeat("long", 200)} {
		h.emu.Put(emulator.Certificate{Name: n, ExpirationDate: "2999-01-01", FileCreationDate: "2024-01-01"})
	}
	resp, err := h.request(logical.ListOperation, "certs/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"example.com", "example.com (new)"}, resp.Data["keys"])
	require.Len(t, resp.Warnings, 1)
	w := resp.Warnings[0]
	require.Contains(t, w, "5 certificate name(s) in NHN cannot be served and were left out: ")
	require.Contains(t, w, `"..", "back\\slash", "bad/name", "bell\a", "longlonglong`, "each named, quoted, sorted")
	require.Contains(t, w, "... (800 bytes)", "a long name is cut")
	require.True(t, testkit.IsPrintableText(w), w)
	require.Less(t, len(w), 600)

	// Many: at most maxWarnedNames are spelled out.
	for i := range 30 {
		h.emu.Put(emulator.Certificate{Name: fmt.Sprintf("x/%02d", i), ExpirationDate: "2999-01-01"})
	}
	resp, err = h.request(logical.ListOperation, "certs/", nil)
	require.NoError(t, err)
	require.Contains(t, resp.Warnings[0], "35 certificate name(s)")
	require.Contains(t, resp.Warnings[0], " and 15 more.")
	require.Equal(t, maxWarnedNames-5, strings.Count(resp.Warnings[0], `"x/`), "the first %d, sorted", maxWarnedNames)
}

func TestListUpstreamErrors(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	for _, f := range []emulator.Fault{
		{Mode: emulator.FaultDown},
		{Mode: emulator.FaultGarbage, Target: "list"},
		{Mode: emulator.FaultResult, Target: "list", ResultCode: 52006},
	} {
		h.emu.SetFault(f)
		resp, err := h.request(logical.ListOperation, "certs/", nil)
		require.Nil(t, resp)
		var coded logical.HTTPCodedError
		require.True(t, errors.As(err, &coded), "%v", err)
		require.Equal(t, http.StatusBadGateway, coded.Code(), f.Mode)
		h.requireNoSecrets(fmt.Sprint(f.Mode), err.Error())
	}
}

func TestListExpiringWithin(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	// The dates and the list share one clock: a run across midnight UTC
	// counts the same days.
	now := time.Now()
	h.b.now = func() time.Time { return now }
	for name, days := range map[string]int{"soon.example.com": 5, "month.example.com": 25, "later.example.com": 200, "gone.example.com": -3} {
		h.emu.Put(emulator.Certificate{
			Name: name, Authority: "NHN", FileCreationDate: "2024-01-01",
			ExpirationDate: now.UTC().AddDate(0, 0, days).Format(time.DateOnly),
		})
	}
	list := func(data map[string]any) map[string]any {
		resp, err := h.request(logical.ListOperation, "certs/", data)
		require.NoError(t, err)
		require.False(t, resp.IsError(), "%v", resp.Error())
		return resp.Data
	}
	d := list(map[string]any{"expiring_within": "720h"})
	require.Equal(t, []string{"month.example.com", "soon.example.com"}, d["keys"])
	require.Equal(t, 5, d["key_info"].(map[string]any)["soon.example.com"].(map[string]any)["expires_in_days"])
	require.Equal(t, 25, d["key_info"].(map[string]any)["month.example.com"].(map[string]any)["expires_in_days"])

	d = list(map[string]any{"expiring_within": "168h"})
	require.Equal(t, []string{"soon.example.com"}, d["keys"])

	// With status=all, certificates already expired fall within any window.
	d = list(map[string]any{"expiring_within": "168h", "status": "all"})
	require.Equal(t, []string{"gone.example.com", "soon.example.com"}, d["keys"])
	require.Equal(t, -3, d["key_info"].(map[string]any)["gone.example.com"].(map[string]any)["expires_in_days"])

	resp, err := h.request(logical.ListOperation, "certs/", map[string]any{"expiring_within": "-1h"})
	require.True(t, err != nil || resp.IsError())
}

// TestBoundListLoadsNoFile lists 10,000 certificates: no file is
// downloaded, nothing is cached, and what the list remembers per name (for
// metadata and the background refresh) is one entry per listed name, not
// growing with repeated lists.
func TestBoundListLoadsNoFile(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	require.NoError(t, h.emu.Seed("bulk", 10000))
	for range 3 {
		for _, data := range []map[string]any{nil, {"status": "all"}} {
			resp, err := h.request(logical.ListOperation, "certs/", data)
			require.NoError(t, err)
			require.False(t, resp.IsError())
			require.Len(t, resp.Data["keys"], 10000)
		}
	}
	require.Zero(t, h.emu.Stats().FileCalls, "a list downloads no certificate file")
	require.Zero(t, h.b.cache.memoryLen())
	require.Empty(t, h.cacheKeys())
	h.b.catalog.mu.RLock()
	remembered := len(h.b.catalog.byName)
	h.b.catalog.mu.RUnlock()
	require.Equal(t, 10000, remembered)
}
