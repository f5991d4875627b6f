package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The checker's own rules, on made-up histories (no Vault needed): a
// checker that cannot fail checks nothing.

// C6 near an outage: the renewal is held to the first clean run after
// it, + 5 s; a node it reached later than that is a violation.
func TestChaosCheckerC6NearOutage(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	runs := []refreshRun{
		{node: "node1", at: at(3), end: at(4), ok: false}, // during the outage
		{node: "node1", at: at(25), end: at(26), ok: true},
	}
	check := func(delay time.Duration) []string {
		h := newHistory()
		h.outages = []configWindow{{at(0), at(10)}}
		h.renewals = []*renewal{{name: "a.example", serial: "02", at: at(1), visible: at(1.1),
			reached: map[string]time.Duration{"node1": delay, "node2": delay, "node3": 2 * time.Second}}}
		v, _ := h.check(chaosInterval, append([]refreshRun(nil), runs...))
		return v
	}
	require.Empty(t, check(29*time.Second), "reached 3 s after the first clean run ended")
	v := check(31 * time.Second)
	require.Len(t, v, 2, "reached node1 and node2 6 s after the first clean run ended: %v", v)
	require.Contains(t, v[0], "C6:")
	require.Contains(t, v[0], "first clean run")

	// Renewed again 20 s later, within that bound (past the plain one):
	// the first serial may never be served, and is not held to it.
	h := newHistory()
	h.outages = []configWindow{{at(0), at(10)}}
	h.renewals = []*renewal{
		{name: "a.example", serial: "02", at: at(1), visible: at(1.1), reached: map[string]time.Duration{"node1": -1}},
		{name: "a.example", serial: "03", at: at(21), visible: at(21.1), reached: map[string]time.Duration{"node1": 9 * time.Second}},
	}
	v, _ = h.check(chaosInterval, append([]refreshRun(nil), runs...))
	require.Empty(t, v)
}

// C6 away from outages: the plain bound, refresh_interval x 1.1 + 5 s.
func TestChaosCheckerC6Plain(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		delay time.Duration
		bad   bool
	}{{15 * time.Second, false}, {17 * time.Second, true}, {-1, true}} {
		h := newHistory()
		h.renewals = []*renewal{{name: "a.example", serial: "02", at: t0, visible: t0,
			reached: map[string]time.Duration{"node1": c.delay}}}
		v, _ := h.check(chaosInterval, nil)
		require.Equal(t, c.bad, len(v) > 0, "delay %s: %v", c.delay, v)
	}
}

// refreshRuns pairs each start with the end the log gives it; a run whose
// plugin died has none.
func TestChaosRefreshRunsFromLog(t *testing.T) {
	log := strings.Join([]string{
		`2026-12-07T12:00:01.000Z [DEBUG] secrets.nhncert: background refresh starting: mount=nhncert/`,
		`2026-12-07T12:00:02.000Z [DEBUG] secrets.nhncert: background refresh done: mount=nhncert/ listed=26 refreshed=1 removed=0 failed=0 deferred=0`,
		`2026-12-07T12:00:11.000Z [DEBUG] secrets.nhncert: background refresh starting: mount=nhncert/`,
		`2026-12-07T12:00:12.000Z [WARN]  secrets.nhncert: background refresh failed; backing off: mount=nhncert/ error="NHN down" failures=1`,
		`2026-12-07T12:00:31.000Z [DEBUG] secrets.nhncert: background refresh starting: mount=nhncert/`,
		`2026-12-07T12:00:32.000Z [DEBUG] secrets.nhncert: background refresh done: mount=nhncert/ listed=26 refreshed=0 removed=0 failed=2 deferred=0`,
		`2026-12-07T12:00:41.000Z [DEBUG] secrets.nhncert: background refresh starting: mount=nhncert/`,
	}, "\n")
	p := filepath.Join(t.TempDir(), "node1.log")
	require.NoError(t, os.WriteFile(p, []byte(log), 0o600))
	runs := refreshRuns("node1", p)
	require.Len(t, runs, 4)
	var oks []bool
	var ended []bool
	for _, r := range runs {
		oks = append(oks, r.ok)
		ended = append(ended, !r.end.IsZero())
	}
	require.Equal(t, []bool{true, false, false, false}, oks)
	require.Equal(t, []bool{true, true, true, false}, ended)
}

// Partitions come from their own stream: the seed's other faults stay as
// they were, in order.
func TestNemesisPartitionsKeepTheSchedule(t *testing.T) {
	base := nemesisSchedule(27001, 20*time.Minute, false)
	with := nemesisSchedule(27001, 20*time.Minute, true)
	var rest []nemesisStep
	kinds := map[string]int{}
	for _, s := range with {
		kinds[s.kind]++
		if !strings.HasPrefix(s.kind, "partition-") {
			rest = append(rest, s)
		}
	}
	require.Equal(t, base, rest)
	require.Equal(t, "partition-active", with[1].kind, "a partition of the active node early, even in the short run")
	require.Equal(t, "partition-standby", with[4].kind)
	require.Greater(t, kinds["partition-active"]+kinds["partition-standby"], 10, "kinds over 20 minutes: %v", kinds)
}
