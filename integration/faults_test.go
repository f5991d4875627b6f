package integration

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
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
// request_timeout x 3 (+ Vault's overhead); and the first read after NHN
// recovers must download again. Every case logs what the user saw and how
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

	t.Run("expired certificate", func(t *testing.T) {
		ctx := ctxT(t)
		const name = "expired.example.com"
		r, d := timedRaw(t, v, "GET", mount+"/certs/"+name, nil)
		t.Logf("expired certificate, NHN up: %s", obs{r.status, d, r.says(), -1})
		if r.status != 200 || !strings.Contains(r.says(), "the certificate expired at") {
			t.Errorf("read of an expired certificate NHN still serves: %s; want 200 with a warning \"the certificate expired at ...\"", r)
		}
		if err := e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.emu.admin.ClearFault(ctxT(t)) }()
		for _, p := range []string{"certs/", "metadata/"} {
			r, d = timedRaw(t, v, "GET", mount+"/"+p+name, nil)
			t.Logf("expired certificate (%s), NHN down: %s", p, obs{r.status, d, r.says(), -1})
			if r.status != 502 || !strings.Contains(r.says(), "the cached copy expired at") || !strings.Contains(r.says(), "is not served") {
				t.Errorf("%s%s while NHN is down: %s; want 502 saying the cached copy expired and is not served", p, name, r)
			}
			if strings.Contains(string(r.body), "BEGIN") {
				t.Errorf("%s%s: the refusal holds PEM data: %s", p, name, r)
			}
			if d > faultBudget {
				t.Errorf("%s%s took %s, more than %s", p, name, d, faultBudget)
			}
		}
		summary = append(summary, fmt.Sprintf("| expired-cached | certificate past NotAfter, NHN up then down | NHN up: %s; NHN down: %s | | | |",
			"HTTP 200 + warning \"the certificate expired at ...\"", obs{r.status, d, r.says(), -1}))
	})

	t.Run("certificate expires while cached", func(t *testing.T) {
		ctx := ctxT(t)
		// A mount of its own behind a proxy that serves a certificate
		// valid for a few seconds; cache_ttl stays at its default (1h).
		const m, name = "nhncert-expiry", "short.example.com"
		proxy := newNHNProxy(t, e.emu.url)
		if err := e.enable(m); err != nil {
			t.Fatal(err)
		}
		if err := e.configureEndpoint(m, proxy.url, "request_timeout=1s", "refresh_interval=0"); err != nil {
			t.Fatal(err)
		}
		short, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: name, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(3 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		proxy.override(name, short.PEMFile(emulator.FileOptions{}))
		r, d := timedRaw(t, v, "GET", m+"/certs/"+name, nil)
		if r.status != 200 || len(r.warnings()) != 0 {
			t.Fatalf("first read of a certificate valid for 3 more seconds: %s", r)
		}
		t.Logf("valid for 3s, first read: %s", obs{r.status, d, r.says(), -1})
		waitUntil(t, short.Leaf.NotAfter.Add(100*time.Millisecond), 10*time.Second)

		// Past NotAfter, well within cache_ttl, NHN down.
		proxy.clearOverride(name)
		if err := e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.emu.admin.ClearFault(ctxT(t)) }()
		r, d = timedRaw(t, v, "GET", m+"/certs/"+name, nil)
		t.Logf("expired while cached (within cache_ttl), NHN down: %s", obs{r.status, d, r.says(), -1})
		if r.status != 502 || !strings.Contains(r.says(), "the cached copy expired at") || !strings.Contains(r.says(), "is not served") {
			t.Errorf("a certificate that expired while cached, NHN down: %s; want 502 saying the cached copy expired and is not served", r)
		}
		expiredDown := obs{r.status, d, r.says(), -1}
		if err := e.emu.admin.ClearFault(ctx); err != nil {
			t.Fatal(err)
		}

		// NHN up but still holding the expired file.
		proxy.override(name, short.PEMFile(emulator.FileOptions{}))
		r, d = timedRaw(t, v, "GET", m+"/certs/"+name, nil)
		t.Logf("expired, NHN up and still serving it: %s", obs{r.status, d, r.says(), -1})
		if r.status != 200 || !strings.Contains(r.says(), "the certificate expired at") {
			t.Errorf("an expired certificate NHN still serves: %s; want 200 with a warning that it expired", r)
		}
		expiredUp := obs{r.status, d, r.says(), -1}

		// NHN gets the renewed certificate.
		renewed, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: name})
		if err != nil {
			t.Fatal(err)
		}
		proxy.override(name, renewed.PEMFile(emulator.FileOptions{}))
		r, d = timedRaw(t, v, "GET", m+"/certs/"+name, nil)
		if r.status != 200 || len(r.warnings()) != 0 || r.data()["serial_number"] != serialHex(renewed.Leaf.SerialNumber) {
			t.Errorf("after NHN got the renewed certificate: %s", r)
		}
		summary = append(summary, fmt.Sprintf("| expired-while-cached | a cached certificate passes NotAfter within cache_ttl | NHN down: %s | | | NHN up with the expired file: %s; renewed: %s |",
			expiredDown, expiredUp, obs{r.status, d, r.says(), -1}))
	})

	t.Run("concurrent reads during an outage share one attempt sequence", func(t *testing.T) {
		ctx := ctxT(t)
		name := "f-herd.example.com"
		if _, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
		mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+name, nil, nil)
		warmed := time.Now()
		if err := e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.emu.admin.ClearFault(ctxT(t)) }()
		waitUntil(t, warmed.Add(faultCacheTTL+50*time.Millisecond), 5*time.Second)
		before := e.emu.stats(t).FileCallsByName[name]
		const n = 20
		res, took := concurrentReads(v, name, n, func(int) url.Values { return nil })
		calls := e.emu.stats(t).FileCallsByName[name] - before
		for i, r := range res {
			if r.status != 200 || !strings.Contains(r.says(), "may be stale") {
				t.Errorf("concurrent read %d during the outage: %s", i, r)
			}
		}
		t.Logf("%d concurrent reads of a cached name during an outage: all answered in %s; NHN saw %d download attempts", n, took.Round(10*time.Millisecond), calls)
		if calls > 2*faultAttempts {
			t.Errorf("%d concurrent reads made %d download attempts; they should share one download (%d attempts)", n, calls, faultAttempts)
		}
	})

	t.Run("PEM file changes mid-flight", func(t *testing.T) {
		ctx := ctxT(t)
		name := "f-rotating.example.com"
		if _, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: name, KeyType: emulator.RSA}); err != nil {
			t.Fatal(err)
		}
		mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+name, nil, nil)
		// Every download now rotates the certificate (new key, new
		// serial) first; reads overlap downloads.
		if err := e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultRotating, Target: emulator.TargetFiles}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.emu.admin.ClearFault(ctxT(t)) }()
		const n = 16
		res, took := concurrentReads(v, name, n, func(i int) url.Values {
			q := url.Values{}
			if i%2 == 0 {
				q.Set("refresh", "true")
			}
			if i%4 == 1 {
				q.Set("format", "pem_bundle")
			}
			return q
		})
		serials := map[string]bool{}
		for i, r := range res {
			d := r.data()
			if r.status != 200 || d == nil {
				t.Errorf("read %d while the file changes: %s", i, r)
				continue
			}
			certPEM, _ := d["certificate"].(string)
			keyPEM, _ := d["private_key"].(string)
			if _, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM)); err != nil {
				t.Errorf("read %d while the file changes: certificate and private_key are not one pair: %v", i, err)
			}
			leaf := parseLeaf(t, certPEM)
			if issuer, _ := d["issuing_ca"].(string); issuer != "" {
				if err := leaf.CheckSignatureFrom(parseCertPEM(t, "issuing_ca", issuer)); err != nil {
					t.Errorf("read %d: issuing_ca did not sign the leaf: %v", i, err)
				}
			}
			if got := serialHex(leaf.SerialNumber); got != d["serial_number"] {
				t.Errorf("read %d: serial_number %v is not the leaf's %s", i, d["serial_number"], got)
			}
			serials[fmt.Sprint(d["serial_number"])] = true
		}
		if err := e.emu.admin.ClearFault(ctx); err != nil {
			t.Fatal(err)
		}
		r := readCert(t, v, name, map[string][]string{"refresh": {"true"}})
		certs, err := e.emu.admin.Certs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range certs {
			if c.Name == name && c.Serial != r.Data["serial_number"] {
				t.Errorf("after the file stopped changing, refresh=true serves serial %v; NHN holds %s", r.Data["serial_number"], c.Serial)
			}
		}
		t.Logf("%d overlapping reads while every download rotated the file: %d distinct serials, every answer one matching certificate+key pair, in %s",
			n, len(serials), took.Round(10*time.Millisecond))
		summary = append(summary, fmt.Sprintf("| rotating | the file changes on every download | %d overlapping reads: HTTP 200, each a matching pair (%d serials) in %s | | | |",
			n, len(serials), took.Round(10*time.Millisecond)))
	})

	t.Run("a slow download never replaces a newer one", func(t *testing.T) {
		// A download that NHN answered before a rotation finishes after a
		// refresh=true read got the rotated file. The cache must keep the
		// newer file: the reads that follow must not go back to the old
		// certificate (Vault Agent would render the old one again), and a
		// failed slow download must not put the old copy back in memory.
		ctx := ctxT(t)
		const m = "nhncert-race"
		proxy := newNHNProxy(t, e.emu.url)
		if err := e.enable(m); err != nil {
			t.Fatal(err)
		}
		if err := e.configureEndpoint(m, proxy.url, "request_timeout=10s", "cache_ttl=3s", "refresh_interval=0"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			id      string
			replace []byte // what the slow download brings instead of NHN's file
			nhnDown bool   // NHN is down for the read that follows
		}{
			{id: "older-file"},
			{id: "failed-download", replace: []byte("not a certificate file"), nhnDown: true},
		} {
			t.Run(c.id, func(t *testing.T) {
				name := "race-" + c.id + ".example.com"
				v0, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: name})
				if err != nil {
					t.Fatal(err)
				}
				path := m + "/certs/" + name
				if r := mustRaw(t, v, v.rootToken, "GET", path, nil, nil); r.status != 200 {
					t.Fatalf("first read: %s", r)
				}
				waitUntil(t, time.Now().Add(3*time.Second+50*time.Millisecond), 5*time.Second)

				// R1: a read past cache_ttl; its download is held once NHN
				// answered it with v0.
				arrived, release := proxy.holdNext(name, c.replace)
				defer release()
				r1 := make(chan rawResponse, 1)
				go func() {
					r, err := v.raw(v.rootToken, "GET", path, nil, nil)
					if err != nil {
						r = rawResponse{status: -1, body: []byte(err.Error())}
					}
					r1 <- r
				}()
				select {
				case <-arrived:
				case <-time.After(30 * time.Second):
					t.Fatal("the held download never reached NHN")
				}
				// NHN rotates; R2 (refresh=true) gets v1.
				v1, err := e.emu.admin.Rotate(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				r2 := mustRaw(t, v, v.rootToken, "GET", path, url.Values{"refresh": {"true"}}, nil)
				if r2.status != 200 || r2.data()["serial_number"] != v1.Serial {
					t.Fatalf("refresh=true after the rotation: %s; want serial %s", r2, v1.Serial)
				}
				// R1 finishes now, with the older answer.
				release()
				var got1 rawResponse
				select {
				case got1 = <-r1:
				case <-time.After(30 * time.Second):
					t.Fatal("the held read never finished")
				}
				t.Logf("held read: HTTP %d serial %v warnings %q", got1.status, got1.data()["serial_number"], got1.warnings())

				if c.nhnDown {
					if err := e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}); err != nil {
						t.Fatal(err)
					}
					defer func() { _ = e.emu.admin.ClearFault(ctxT(t)) }()
				}
				// R3, within cache_ttl of v1's download.
				r3 := mustRaw(t, v, v.rootToken, "GET", path, nil, nil)
				t.Logf("next read: HTTP %d serial %v warnings %q (v0 %s, v1 %s)", r3.status, r3.data()["serial_number"], r3.warnings(), v0.Serial, v1.Serial)
				if r3.status != 200 || r3.data()["serial_number"] != v1.Serial || len(r3.warnings()) != 0 {
					t.Errorf("PLUGIN BUG: after refresh=true cached v1 (%s), a slower download begun before it (%s) left the cache with the older copy: the next read gives HTTP %d serial %v, warnings %q; want v1 without a warning",
						v1.Serial, c.id, r3.status, r3.data()["serial_number"], r3.warnings())
				}
			})
		}
	})

	t.Logf("what the user sees, per fault (request_timeout=1s, cache_ttl=1s; budget %s = request_timeout x %d + %s for Vault):\n"+
		"| fault | NHN does | cached name, past cache_ttl | uncached name | LIST | first read after recovery |\n|---|---|---|---|---|---|\n%s",
		faultBudget, faultAttempts, faultSlack, strings.Join(summary, "\n"))
	if strings.Contains(tail(v.logPath, 1000000), e.emu.secret) {
		t.Errorf("Vault's log holds the Secret Access Key")
	}
}

// runFaultCase runs one fault and returns its row of the summary table.
func runFaultCase(t *testing.T, e *env, c faultCase) string {
	v := e.vault
	ctx := ctxT(t)
	cached := "f-" + c.id + "-cached.example.com"
	uncached := "f-" + c.id + "-uncached.example.com"
	first, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: cached})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: uncached}); err != nil {
		t.Fatal(err)
	}
	if r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+cached, nil, nil); r.status != 200 {
		t.Fatalf("warming %s: %s", cached, r)
	}
	warmed := time.Now()

	apply := func() {
		t.Helper()
		if c.revoke {
			if err := e.emu.admin.RevokeTokens(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.emu.admin.SetFault(ctx, c.fault); err != nil {
			t.Fatal(err)
		}
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
		if strings.Contains(o.says, "BEGIN") || strings.Contains(o.says, "PRIVATE KEY") {
			t.Errorf("%s: %s %s says something of PEM material: %s", c.id, method, path, o.says)
		}
		if d > faultBudget {
			t.Errorf("%s: %s %s took %s; no request may take longer than %s", c.id, method, path, d, faultBudget)
		}
		if method == "GET" && r.status == 200 {
			if got := r.data()["serial_number"]; !c.recovers && got != first.Serial {
				t.Errorf("%s: %s served serial %v, want the cached %s", c.id, path, got, first.Serial)
			}
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
	cachedReadAt := time.Now()
	ou := read(uncached)
	ol := obs{downloads: -1}
	if !c.perRead {
		ol = read("")
	}

	// NHN gets a new certificate during the outage, then recovers.
	var newSerial string
	if c.refused {
		if err := e.restartEmulator(); err != nil {
			t.Fatal(err)
		}
		add, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: cached})
		if err != nil {
			t.Fatal(err)
		}
		newSerial = add.Serial
	} else {
		rot, err := e.emu.admin.Rotate(ctx, cached)
		if err != nil {
			t.Fatal(err)
		}
		newSerial = rot.Serial
		if err := e.emu.admin.ClearFault(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if c.recovers {
		// The cached name was downloaded again despite the fault: wait
		// until that copy is past cache_ttl too.
		waitUntil(t, cachedReadAt.Add(faultCacheTTL+50*time.Millisecond), 5*time.Second)
	}
	before := e.emu.stats(t).FileCallsByName[cached]
	rr, dr := timedRaw(t, v, "GET", mount+"/certs/"+cached, nil)
	or := obs{status: rr.status, dur: dr, says: rr.says(), downloads: e.emu.stats(t).FileCallsByName[cached] - before}

	t.Logf("%s (%s):\n  cached:    %s\n  uncached:  %s\n  list:      %s\n  recovered: %s", c.id, c.what, oc, ou, ol, or)

	switch {
	case c.recovers:
		if oc.status != 200 || oc.says != "" || oc.downloads < 2 {
			t.Errorf("%s: cached name: %s; want HTTP 200 without a warning, fresh from NHN after a retry", c.id, oc)
		}
		if ou.status != 200 || ou.says != "" {
			t.Errorf("%s: uncached name: %s; want HTTP 200 after a retry", c.id, ou)
		}
	default:
		if oc.status != 200 || !strings.Contains(oc.says, "may be stale") || !strings.Contains(oc.says, "refreshing it failed") || !strings.Contains(oc.says, c.want) {
			t.Errorf("%s: cached name: %s; want HTTP 200 with a warning that it may be stale because %q", c.id, oc, c.want)
		}
		if ou.status != 502 || !strings.Contains(ou.says, c.want) {
			t.Errorf("%s: uncached name: %s; want HTTP 502 saying %q", c.id, ou, c.want)
		}
		if c.unreachable && !strings.Contains(ou.says, "NHN Certificate Manager is unreachable") {
			t.Errorf("%s: uncached name: %s; want an error saying NHN Certificate Manager is unreachable", c.id, ou)
		}
		if !c.unreachable && strings.Contains(ou.says, "unreachable") {
			t.Errorf("%s: uncached name: %s; NHN answered, the error must say what it answered, not that it is unreachable", c.id, ou)
		}
		switch {
		case c.listOK && ol.status != 200:
			t.Errorf("%s: the fault spares the list, yet LIST gave %s", c.id, ol)
		case !c.listOK && ol.status != 502:
			t.Errorf("%s: LIST: %s; want HTTP 502 (lists are not cached)", c.id, ol)
		}
	}
	// After the emulator restarted it does not know the plugin's token:
	// the first download is refused with 401 and a new token issued.
	wantDownloads := map[bool]int64{false: 1, true: 2}[c.refused]
	if or.status != 200 || or.says != "" || rr.data()["serial_number"] != newSerial || or.downloads != wantDownloads {
		t.Errorf("%s: first read after NHN recovered: %s, serial %v; want HTTP 200 without a warning, %d download(s), the new serial %s",
			c.id, or, rr.data()["serial_number"], wantDownloads, newSerial)
	}
	cell := func(o obs) string {
		if o.status == 0 {
			return "-"
		}
		return strings.ReplaceAll(o.String(), "|", "/")
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", c.id, c.what, cell(oc), cell(ou), cell(ol), cell(or))
}

// concurrentReads reads certs/<name> n times at once, read i with query(i),
// as root; a request that got no answer shows as status -1. It returns the
// answers and how long all of them took.
func concurrentReads(v *vaultServer, name string, n int, query func(i int) url.Values) ([]rawResponse, time.Duration) {
	var wg sync.WaitGroup
	res := make([]rawResponse, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := v.raw(v.rootToken, "GET", mount+"/certs/"+name, query(i), nil)
			if err != nil {
				r = rawResponse{status: -1, body: []byte(err.Error())}
			}
			res[i] = r
		}()
	}
	wg.Wait()
	return res, time.Since(start)
}
