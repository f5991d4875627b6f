package integration

import (
	"fmt"
	"time"

	"testing"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faultRetryWindow reads a cached name 20 times in a row, past cache_ttl,
// while NHN is down: NHN is asked at most twice (once per retry window of
// about 10 s, the reads taking less), each read serves the copy with the
// stale warning, and its ttl counts to the next attempt (about 10 s, not
// 3 s). It returns its row of the summary table.
func faultRetryWindow(t *testing.T, e *env) string {
	v := e.vault
	ctx := ctxT(t)
	name := "f-window.example.com"
	_, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: name})
	require.NoError(t, err)
	r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+name, nil, nil)
	require.Equal(t, 200, r.status, "warming %s: %s", name, r)
	serial := r.data()["serial_number"]
	warmed := time.Now()
	require.NoError(t, e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}))
	defer func() { _ = e.emu.admin.ClearFault(ctxT(t)) }()
	waitUntil(t, warmed.Add(faultCacheTTL+50*time.Millisecond), 5*time.Second)

	const n = 20
	before := e.emu.stats(t).FileCallsByName[name]
	start := time.Now()
	var ttls []float64
	for i := range n {
		r, d := timedRaw(t, v, "GET", mount+"/certs/"+name, nil)
		o := obs{status: r.status, dur: d, says: r.says(), downloads: -1}
		require.Equal(t, 200, r.status, "read %d during the outage: %s", i, o)
		assert.Contains(t, o.says, "may be stale", "read %d during the outage: %s", i, o)
		assert.Contains(t, o.says, "NHN is asked again at", "read %d during the outage: %s", i, o)
		assert.Equal(t, serial, r.data()["serial_number"], "read %d during the outage served another serial", i)
		assert.LessOrEqual(t, d, faultBudget, "read %d during the outage took %s", i, d)
		ttl, _ := r.data()["ttl"].(float64)
		ttls = append(ttls, ttl)
		assert.GreaterOrEqual(t, ttl, 8.0, "read %d during the outage: ttl %v; want it to count to the retry window's next attempt (about 10 s), not 3 s", i, ttl)
	}
	took := time.Since(start)
	calls := e.emu.stats(t).FileCallsByName[name] - before
	t.Logf("%d reads of a cached name during an outage, in %s: NHN saw %d download request(s); ttl %v", n, took.Round(10*time.Millisecond), calls, ttls)
	assert.LessOrEqual(t, calls, int64(2), "%d reads during an outage: download requests; want at most one per retry window", n)
	assert.Positive(t, calls, "the first read past cache_ttl asks NHN")

	require.NoError(t, e.emu.admin.ClearFault(ctx))
	rr, or, waited := readUntilFresh(t, e, name)
	assert.Equal(t, 200, rr.status, "after NHN recovered: %s", or)
	assert.Empty(t, or.says, "after NHN recovered: %s", or)
	assert.Equal(t, int64(1), or.downloads, "after NHN recovered: %s", or)
	return fmt.Sprintf("| retry-window | every call HTTP 503, %d reads in a row | %d download request(s) in all; ttl %v..%v | | | %s, after %d stale read(s) |",
		n, calls, ttls[0], ttls[len(ttls)-1], or, waited)
}
