package integration

import (
	"net/url"
	"sort"
	"testing"
	"time"
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
		if err := e.emu.admin.ResetStats(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"status": {status}}, nil)
		took := time.Since(start)
		keys, info := listKeys(t, r)
		st := e.emu.stats(t)
		t.Logf("LIST status=%s over %d certificates: %d keys, %d KB answer, in %s; NHN saw %d list page requests and %d file downloads",
			status, bulk+5, len(keys), len(r.body)/1024, took.Round(time.Millisecond), st.ListCalls, st.FileCalls)
		want := bulk + 4 // the demo set has 4 unexpired certificates and 1 expired
		if status == "all" {
			want++
		}
		if len(keys) != want || len(info) != want || !sort.StringsAreSorted(keys) {
			t.Errorf("status=%s: %d keys (%d key_info), sorted %v; want %d", status, len(keys), len(info), sort.StringsAreSorted(keys), want)
		}
		if st.FileCalls != 0 {
			t.Errorf("status=%s: listing made %d certificate file downloads; want 0", status, st.FileCalls)
		}
		if st.ListCalls > int64(want/100+2) {
			t.Errorf("status=%s: %d list page requests for %d certificates (pages of 100)", status, st.ListCalls, want)
		}
	}

	// NHN answering each page in 300ms: the pages after the first are
	// asked 8 at a time, so the list takes about 14 round trips, not 101.
	const latency = 300 * time.Millisecond
	if err := e.emu.admin.SetLatency(ctxT(t), latency); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", nil, nil)
	took := time.Since(start)
	_ = e.emu.admin.SetLatency(ctxT(t), 0)
	keys, _ := listKeys(t, r)
	t.Logf("LIST over %d certificates with %s per NHN answer: %d keys in %s", bulk+5, latency, len(keys), took.Round(time.Millisecond))
	if took > 40*latency {
		t.Errorf("LIST with %s per page took %s; the 101 pages are not fetched in parallel", latency, took)
	}
}
