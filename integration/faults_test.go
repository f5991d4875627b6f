package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Timing of the fault tests: the plugin tries an upstream call at most
// faultAttempts times within faultRequestTimeout x faultAttempts.
const (
	faultRequestTimeout = time.Second // the smallest request_timeout
	faultAttempts       = 3           // the plugin's maxAttempts
	faultCacheTTL       = time.Second
	// faultSlack is what Vault itself may add to the plugin's budget on a
	// loaded two-core machine (routing, the plugin's gRPC, JSON).
	faultSlack = 4 * time.Second
)

// faultBudget is the longest any request may take while NHN misbehaves.
const faultBudget = faultRequestTimeout*faultAttempts + faultSlack

// faultCase is one way NHN misbehaves.
type faultCase struct {
	id, what string
	fault    emulator.Fault
	refused  bool // stop the emulator's process: connection refused
	revoke   bool // revoke the plugin's token first, so that it needs a new one
	perRead  bool // set the fault again before each read (it is used up by one)
	recovers bool // the plugin's retries get through: the reads succeed
	// want is in the stale warning of a cached name and in the error of an
	// uncached one.
	want string
	// unreachable: the uncached error says "NHN Certificate Manager is
	// unreachable" (no usable answer after every attempt), rather than
	// naming a bad answer.
	unreachable bool
	listOK      bool // the fault only concerns file downloads
}

// obs is what a user saw for one request.
type obs struct {
	status    int
	dur       time.Duration
	says      string // errors, or warnings
	downloads int64  // file downloads NHN saw for it (-1: unknown)
}

func (o obs) String() string {
	d := ""
	if o.downloads >= 0 {
		d = fmt.Sprintf(", %d download attempt(s)", o.downloads)
	}
	s := o.says
	if s == "" {
		s = "(no warning)"
	}
	return fmt.Sprintf("HTTP %d in %s%s: %s", o.status, o.dur.Round(10*time.Millisecond), d, s)
}

// TestFaults puts each upstream fault of the emulator between a real Vault
// and NHN (request_timeout=1s, cache_ttl=1s, no background refresh) and
// reads, past cache_ttl, a certificate read before the fault, and one
// never read. A cached certificate must keep being served, HTTP 200 with a
// warning saying it may be stale and why; an uncached one must fail with
// a 502 that says what NHN did; no request may take longer than
// request_timeout x 3 (+ Vault's overhead); and once NHN recovers, reads
// within the cached name's retry window serve the stale copy without
// asking NHN, and the first read after it must download again. Every case logs what the user saw and how
// long it took.
func TestFaults(t *testing.T) {
	e := newEnv(t)
	v := e.vault
	mustCLI(t, v, "write", mount+"/config", "request_timeout=1s", "cache_ttl=1s", "refresh_interval=0")

	cases := []faultCase{
		{id: "down", what: "every call HTTP 503", fault: emulator.Fault{Mode: emulator.FaultDown},
			want: "HTTP 503", unreachable: true},
		{id: "refused", what: "the emulator is stopped: connection refused", refused: true,
			want: "connection refused", unreachable: true},
		{id: "reset", what: "every connection closed without an answer", fault: emulator.Fault{Mode: emulator.FaultReset},
			unreachable: true},
		{id: "slow", what: "answers after 10s, past request_timeout=1s", fault: emulator.Fault{Mode: emulator.FaultSlow, Delay: 10 * time.Second},
			want: "no answer within request_timeout", unreachable: true},
		{id: "flaky", what: "two HTTP 500s, then fine", fault: emulator.Fault{Mode: emulator.FaultFlaky, Count: 2},
			perRead: true, recovers: true},
		{id: "429-once", what: "one HTTP 429 with Retry-After: 2, then fine", fault: emulator.Fault{Mode: emulator.FaultTooMany, RetryAfter: 2, Count: 1},
			perRead: true, recovers: true},
		{id: "429", what: "every call HTTP 429 with Retry-After: 2", fault: emulator.Fault{Mode: emulator.FaultTooMany, RetryAfter: 2},
			want: "HTTP 429", unreachable: true},
		{id: "429-long", what: "every call HTTP 429 with Retry-After: 60", fault: emulator.Fault{Mode: emulator.FaultTooMany, RetryAfter: 60},
			want: "HTTP 429", unreachable: true},
		{id: "garbage", what: "HTTP 200, Content-Type JSON, body not JSON", fault: emulator.Fault{Mode: emulator.FaultGarbage},
			want: "not NHN's result format"},
		{id: "token-down", what: "the token was revoked and the token service answers 503", revoke: true,
			fault: emulator.Fault{Mode: emulator.FaultDown, Target: emulator.TargetToken},
			want:  "issuing a User Access Key token: HTTP 503", unreachable: true},
		{id: "token-slow", what: "the token was revoked and the token service answers after 10s", revoke: true,
			fault: emulator.Fault{Mode: emulator.FaultSlow, Target: emulator.TargetToken, Delay: 10 * time.Second},
			want:  "issuing a User Access Key token: no answer within request_timeout", unreachable: true},
		{id: "badpem", what: "the file is not PEM", fault: emulator.Fault{Mode: emulator.FaultBadPEM, Target: emulator.TargetFiles},
			want: "not a PEM file", listOK: true},
		{id: "mismatch", what: "the file's key is not the leaf's", fault: emulator.Fault{Mode: emulator.FaultMismatch, Target: emulator.TargetFiles},
			want: "does not match the leaf", listOK: true},
		{id: "huge", what: "the file is over 1 MiB", fault: emulator.Fault{Mode: emulator.FaultHuge, Target: emulator.TargetFiles},
			want: "larger than", listOK: true},
		{id: "52003", what: "resultCode 52003 instead of the file", fault: emulator.Fault{Mode: emulator.FaultResult, Target: emulator.TargetFiles, ResultCode: 52003},
			want: "resultCode 52003", listOK: true},
	}

	var summary []string
	for _, c := range cases {
		ok := t.Run(c.id, func(t *testing.T) {
			row := runFaultCase(t, e, c)
			summary = append(summary, row)
		})
		if !ok {
			// Leave NHN healthy for the next case.
			_ = e.emu.admin.ClearFault(ctxT(t))
		}
	}

	// The faults with a test of their own, in this order; those that
	// return a row add it to the summary.
	noRow := func(f func(*testing.T, *env)) func(*testing.T, *env) string {
		return func(t *testing.T, e *env) string { f(t, e); return "" }
	}
	for _, f := range []struct {
		name string
		run  func(*testing.T, *env) string
	}{
		{"expired certificate", faultExpiredCertificate},
		{"certificate expires while cached", faultExpiresWhileCached},
		{"concurrent reads during an outage share one attempt sequence", noRow(faultOutageHerd)},
		{"reads during an outage ask NHN once per retry window", faultRetryWindow},
		{"PEM file changes mid-flight", faultRotatingFile},
		{"a slow download never replaces a newer one", noRow(faultSlowDownload)},
	} {
		t.Run(f.name, func(t *testing.T) {
			if row := f.run(t, e); row != "" {
				summary = append(summary, row)
			}
		})
	}

	t.Logf("what the user sees, per fault (request_timeout=1s, cache_ttl=1s; budget %s = request_timeout x %d + %s for Vault):\n"+
		"| fault | NHN does | cached name, past cache_ttl | uncached name | LIST | first read after recovery |\n|---|---|---|---|---|---|\n%s",
		faultBudget, faultAttempts, faultSlack, strings.Join(summary, "\n"))
	assert.False(t, strings.Contains(tail(v.logPath, 1000000), e.emu.secret), "Vault's log holds the Secret Access Key")
}

// freshBound is how long readUntilFresh reads: the first retry window
// (10 s) with room to spare.
const freshBound = 60 * time.Second

// readUntilFresh reads certs/<name>, NHN having recovered, until an answer
// has no stale warning: the outage opened the name's retry window, within
// which every read must serve the cached copy with the warning without
// asking NHN. It returns the fresh answer, what the user saw of it (its
// downloads counted alone), and how many stale reads came before it.
func readUntilFresh(t *testing.T, e *env, name string) (rawResponse, obs, int) {
	t.Helper()
	v := e.vault
	deadline := time.Now().Add(freshBound)
	for n := 0; ; n++ {
		before := e.emu.stats(t).FileCallsByName[name]
		r, d := timedRaw(t, v, "GET", mount+"/certs/"+name, nil)
		o := obs{status: r.status, dur: d, says: r.says(), downloads: e.emu.stats(t).FileCallsByName[name] - before}
		if r.status != 200 || !strings.Contains(o.says, "may be stale") {
			return r, o, n
		}
		require.Equal(t, int64(0), o.downloads, "a read within the retry window asked NHN: %s", o)
		require.True(t, time.Now().Before(deadline), "still served stale %s after NHN recovered: %s", freshBound, o)
		time.Sleep(500 * time.Millisecond)
	}
}

// runFaultCase runs one fault and returns its row of the summary table.
func runFaultCase(t *testing.T, e *env, c faultCase) string {
	v := e.vault
	ctx := ctxT(t)
	cached := "f-" + c.id + "-cached.example.com"
	uncached := "f-" + c.id + "-uncached.example.com"
	first, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: cached})
	require.NoError(t, err)
	_, err = e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: uncached})
	require.NoError(t, err)
	r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+cached, nil, nil)
	require.Equal(t, 200, r.status, "warming %s: %s", cached, r)
	warmed := time.Now()

	apply := func() {
		t.Helper()
		if c.revoke {
			require.NoError(t, e.emu.admin.RevokeTokens(ctx))
		}
		require.NoError(t, e.emu.admin.SetFault(ctx, c.fault))
	}
	downloads := func(name string) int64 {
		if c.refused {
			return -1
		}
		return e.emu.stats(t).FileCallsByName[name]
	}
	// read reads certs/<name>, or lists certs/ when name is "".
	read := func(name string) obs {
		t.Helper()
		if c.perRead {
			apply()
		}
		method, path := "GET", "certs/"+name
		if name == "" {
			method, path = "LIST", "certs"
		}
		before := downloads(name)
		r, d := timedRaw(t, v, method, mount+"/"+path, nil)
		o := obs{status: r.status, dur: d, says: r.says(), downloads: -1}
		if after := downloads(name); before >= 0 && name != "" {
			o.downloads = after - before
		}
		assertNoSecret(t, e, c.id+": "+path, string(r.body))
		for _, pem := range []string{"BEGIN", "PRIVATE KEY"} {
			assert.NotContains(t, o.says, pem, "%s: %s %s says something of PEM material", c.id, method, path)
		}
		assert.LessOrEqual(t, d, faultBudget, "%s: %s %s took %s; no request may take longer than %s", c.id, method, path, d, faultBudget)
		if method == "GET" && r.status == 200 && !c.recovers {
			assert.Equal(t, first.Serial, r.data()["serial_number"], "%s: %s served another serial than the cached one", c.id, path)
		}
		return o
	}

	if c.refused {
		if err := e.emu.proc.stop(); err != nil {
			t.Logf("emulator exit after SIGTERM: %v", err)
		}
	} else if !c.perRead {
		apply()
	}
	waitUntil(t, warmed.Add(faultCacheTTL+50*time.Millisecond), 5*time.Second)

	oc := read(cached)
	ou := read(uncached)
	ol := obs{downloads: -1}
	if !c.perRead {
		ol = read("")
	}

	// NHN gets a new certificate during the outage, then recovers.
	var newSerial string
	if c.refused {
		require.NoError(t, e.restartEmulator())
		add, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: cached})
		require.NoError(t, err)
		newSerial = add.Serial
	} else {
		rot, err := e.emu.admin.Rotate(ctx, cached)
		require.NoError(t, err)
		newSerial = rot.Serial
		require.NoError(t, e.emu.admin.ClearFault(ctx))
	}
	// The outage opened the cached name's retry window (about 10 s): the
	// reads within it serve the stale copy without asking NHN, and the
	// first read after it downloads.
	rr, or, waited := readUntilFresh(t, e, cached)

	t.Logf("%s (%s):\n  cached:    %s\n  uncached:  %s\n  list:      %s\n  recovered: %s, after %d stale read(s) within the retry window", c.id, c.what, oc, ou, ol, or, waited)

	switch {
	case c.recovers:
		// A cached name has a copy to serve: it is tried once, not
		// retried, and the copy served with the warning until its
		// retry window has passed. An uncached one is retried.
		msg := fmt.Sprintf("%s: cached name: %s; want HTTP 200 with the stale warning after one download attempt (a copy is held, so no retries)", c.id, oc)
		assert.Equal(t, 200, oc.status, msg)
		assert.Contains(t, oc.says, "may be stale", msg)
		assert.Contains(t, oc.says, "NHN is asked again at", msg)
		assert.Equal(t, int64(1), oc.downloads, msg)
		msg = fmt.Sprintf("%s: uncached name: %s; want HTTP 200 after a retry", c.id, ou)
		assert.Equal(t, 200, ou.status, msg)
		assert.Empty(t, ou.says, msg)
		assert.GreaterOrEqual(t, ou.downloads, int64(2), msg)
	default:
		msg := fmt.Sprintf("%s: cached name: %s; want HTTP 200 with a warning that it may be stale because %q", c.id, oc, c.want)
		assert.Equal(t, 200, oc.status, msg)
		for _, want := range []string{"may be stale", "refreshing it failed", c.want} {
			assert.Contains(t, oc.says, want, msg)
		}
		if c.unreachable {
			assert.Contains(t, oc.says, "NHN is asked again at", msg)
		}
		// A copy is held: one download attempt, no retries. Go's
		// transport itself sends a GET again once when a reused
		// connection is closed before the answer (the reset fault).
		oneAttempt := int64(1)
		if c.fault.Mode == emulator.FaultReset {
			oneAttempt = 2
		}
		assert.LessOrEqual(t, oc.downloads, oneAttempt, "%s: cached name: %s; want at most one download attempt (a copy is held)", c.id, oc)
		msg = fmt.Sprintf("%s: uncached name: %s; want HTTP 502 saying %q", c.id, ou, c.want)
		assert.Equal(t, 502, ou.status, msg)
		assert.Contains(t, ou.says, c.want, msg)
		if c.unreachable {
			assert.Contains(t, ou.says, "NHN Certificate Manager is unreachable", "%s: uncached name: %s; want an error saying NHN Certificate Manager is unreachable", c.id, ou)
		} else {
			assert.NotContains(t, ou.says, "unreachable", "%s: uncached name: %s; NHN answered, the error must say what it answered, not that it is unreachable", c.id, ou)
		}
		if c.listOK {
			assert.Equal(t, 200, ol.status, "%s: the fault spares the list, yet LIST gave %s", c.id, ol)
		} else {
			assert.Equal(t, 502, ol.status, "%s: LIST: %s; want HTTP 502 (lists are not cached)", c.id, ol)
		}
	}
	// After the emulator restarted it does not know the plugin's token:
	// the first download is refused with 401 and a new token issued.
	wantDownloads := map[bool]int64{false: 1, true: 2}[c.refused]
	msg := fmt.Sprintf("%s: first read after NHN recovered: %s, serial %v; want HTTP 200 without a warning, %d download(s), the new serial %s",
		c.id, or, rr.data()["serial_number"], wantDownloads, newSerial)
	assert.Equal(t, 200, or.status, msg)
	assert.Empty(t, or.says, msg)
	assert.Equal(t, newSerial, rr.data()["serial_number"], msg)
	assert.Equal(t, wantDownloads, or.downloads, msg)
	cell := func(o obs) string {
		if o.status == 0 {
			return "-"
		}
		return strings.ReplaceAll(o.String(), "|", "/")
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", c.id, c.what, cell(oc), cell(ou), cell(ol), cell(or))
}
