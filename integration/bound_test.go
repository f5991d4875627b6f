package integration

import (
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBoundList lists 10,000 certificates (plus the demo set) through a
// real Vault: every name comes back, sorted, and not one certificate file
// is downloaded (the list is built from NHN's list pages alone).
func TestBoundList(t *testing.T) {
	t.Parallel()
	const bulk = 10000
	e := newEnv(t, withEmulatorArgs("-bulk", "10000"))
	v := e.vault
	for _, status := range []string{"unexpired", "all"} {
		require.NoError(t, e.emu.admin.ResetStats(ctxT(t)))
		start := time.Now()
		r := mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"status": {status}}, nil)
		took := time.Since(start)
		keys, info := listKeys(t, r)
		st := e.emu.stats(t)
		t.Logf("LIST status=%s over %d certificates: %d keys, %d KB answer, in %s; NHN saw %d list page requests and %d file downloads",
			status, bulk+7, len(keys), len(r.body)/1024, took.Round(time.Millisecond), st.ListCalls, st.FileCalls)
		want := bulk + 6 // the demo set has 6 unexpired certificates and 1 expired
		if status == "all" {
			want++
		}
		// Lengths, not assert.Len: that would print 10,000 names.
		assert.Equal(t, want, len(keys), "status=%s: keys", status)
		assert.Equal(t, want, len(info), "status=%s: key_info entries", status)
		assert.True(t, sort.StringsAreSorted(keys), "status=%s: the keys are not sorted", status)
		assert.Zero(t, st.FileCalls, "status=%s: listing made certificate file downloads; want 0", status)
		assert.LessOrEqual(t, st.ListCalls, int64(want/100+2), "status=%s: list page requests for %d certificates (pages of 100)", status, want)
	}

	// NHN answering each page in 300ms: the pages after the first are
	// asked 8 at a time, so the list takes about 14 round trips, not 101.
	const latency = 300 * time.Millisecond
	require.NoError(t, e.emu.admin.SetLatency(ctxT(t), latency))
	start := time.Now()
	r := mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", nil, nil)
	took := time.Since(start)
	_ = e.emu.admin.SetLatency(ctxT(t), 0)
	keys, _ := listKeys(t, r)
	t.Logf("LIST over %d certificates with %s per NHN answer: %d keys in %s", bulk+7, latency, len(keys), took.Round(time.Millisecond))
	assert.LessOrEqual(t, took, 40*latency, "LIST with %s per page took %s; the 101 pages are not fetched in parallel", latency, took)
}
