package nhncert

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"go.uber.org/goleak"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// TestModel drives random histories of the engine, in process, against two
// emulated NHN projects (A and B, the same names holding different
// certificates), and holds every answer and the storage to these
// invariants:
//
//	I1 A served certificate and key belong together.
//	I2 A served certificate is a file NHN held under that name, in the
//	   project configured during the read (either one, for a read that
//	   overlapped a config change), and its leaf has not expired.
//	I3 Once a config delete or a switch to the other project (a new
//	   upstream identity) returned, and the reads and runs in flight with
//	   it have returned, nothing of the old config is in storage or in
//	   memory: after a delete, storage holds no certificate; after a
//	   switch, every stored and in-memory copy is of the new generation.
//	I4 After a background run with NHN up and its list complete, every
//	   copy in storage is the file NHN holds now under its name, and no
//	   name NHN no longer has is stored: a renewal or re-registration NHN
//	   lists is served after the next run.
//	I5 Such a run lists once (twice only when NHN rejected the token and a
//	   new one was issued) and downloads each cached certificate at most
//	   once.
//	I6 A read served while NHN is down of a copy past cache_ttl says it
//	   may be stale.
//	I7 No goroutine of the engine survives Cleanup.
//	I8 While NHN fails for a certificate, reads (without refresh=true) do
//	   not ask NHN for it before its retry window's next attempt.
//	I9-I12 (passphrases racing reads, the metrics after every step, old
//	   credentials after a delete, tokens) are in model_steps_test.go.
//	I13 hosts/<hostname> answers with a certificate NHN held under the name
//	    it gives, covering the host and valid; after a clean run, the best
//	    choice among what NHN holds (model_hosts_test.go).
//	I14-I15 (the list bound and the KDF work bound) are in
//	    model_bounds_test.go.
//
// A history is a sequence of steps drawn from a seed: concurrent reads
// (some with refresh=true), config writes (same identity, the other
// project), config deletes and writes back, renewals, deletes and
// re-registrations (a new certificateId) and same-expiry reissues in NHN
// (which the list cannot show: I4 then allows the copy held), outages
// starting and ending, slow downloads, lists that lose names, copies coming due, a
// restart (a new backend on the same storage), background runs alone or
// concurrent with reads and config changes, and Cleanup at the end.
//
// NHNCERT_MODEL_SEED=<n> replays one history; NHNCERT_MODEL_HISTORIES and
// NHNCERT_MODEL_STEPS set how many and how long (make test: 24 x 40;
// make soak: NHNCERT_MODEL_DURATION bounds a run of many more). A failing
// history prints its seed. Seeds that found a bug stay in
// modelRegressionSeeds.
func TestModel(t *testing.T) {
	histories := int(testkit.EnvInt(t, "NHNCERT_MODEL_HISTORIES", 24))
	steps := int(testkit.EnvInt(t, "NHNCERT_MODEL_STEPS", 40))
	var seeds []uint64
	if s := os.Getenv("NHNCERT_MODEL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("NHNCERT_MODEL_SEED=%q: %v", s, err)
		}
		seeds = []uint64{n}
	} else {
		seeds = append(seeds, modelRegressionSeeds...)
		base := uint64(time.Now().UnixNano())
		for i := 0; i < histories; i++ {
			seeds = append(seeds, base+uint64(i))
		}
	}
	var deadline time.Time
	if d, err := time.ParseDuration(os.Getenv("NHNCERT_MODEL_DURATION")); err == nil && d > 0 {
		deadline = time.Now().Add(d)
	}
	ran := 0
	for i := 0; ; i++ {
		var seed uint64
		switch {
		case i < len(seeds):
			seed = seeds[i]
		case !deadline.IsZero() && time.Now().Before(deadline):
			seed = seeds[len(seeds)-1] + uint64(i)
		default:
			t.Logf("model: %d histories of %d steps (%d list-bound and %d KDF-bound steps among them, %d copies found in memory only before a run), invariants I1-I15 held",
				ran, steps, boundSteps[0].Load(), boundSteps[1].Load(), memoryOnly.Load())
			return
		}
		ran++
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("replay with: NHNCERT_MODEL_SEED=%d go test -run 'TestModel$' .", seed)
				}
			})
			runModel(t, seed, steps)
		})
		if t.Failed() {
			t.Logf("model: failed after %d histories of %d steps", ran, steps)
			return
		}
	}
}

// modelRegressionSeeds are histories that found a bug; each replays first.
var modelRegressionSeeds = []uint64{
	// I3 on 0f2b75b: a config delete with reads and a run in flight left
	// 3 certificates in storage (fixed by the write gate, cache_gate.go).
	1796288364848438489,
	// I5 in the first 20-minute soak (after ~1,100 s): a copy read from
	// storage while a refresh=true read's 52000 dropped it was put back
	// in memory; the next run downloaded it (fixed in putNewer). The
	// interleaving, not only the history, made it: the seed replays the
	// history.
	1796288627589254424,
	// I5 in the second soak (after 403 s): "the run downloaded 1 times for
	// 0 cached certificates". A read loading a copy from storage while a
	// refresh=true read's 52000 dropped it recorded the copy in the index
	// again (and so in memory); fixed in noteLoaded, with
	// TestCopyLoadedDuringDropIsNotRecorded. Its history log was not kept;
	// the interleaving made it, the seed replays the history.
	1796291583376976769,
	// I5 in the third soak (after 89 s): two downloads counted during a run
	// that made none. They were a retired config's requests, sent just
	// before the delete cancelled them and received by the emulator during
	// the next run: not an engine bug; I5 and I8 now count what the run's
	// and the reads' own client sends (sentCounts).
	1796298273223565739,
	// I10 on the catalog before 2cb423c: a certificate NHN
	// deleted stayed in the expiry family after an unexpired list no
	// longer showed it (fixed in catalog.record).
	1796654044220130177,
	// I5 in the 20-minute soak of 2026-12-07 (after 935 s): "the run
	// downloaded 4 times for 3 cached certificates": memory held a copy
	// of the live config that storage did not, and the run refreshed it
	// (as it refreshes every cached copy). I5 now counts the copies in
	// memory as cached too; a run that finds one logs it and the soak's
	// summary counts them. The interleaving did not replay (12 tries).
	1796666458999577828,
}

var modelNames = []string{"a.example", "b.example", "c.example", "d.example"}

type modelRun struct {
	t        *testing.T
	rnd      *rand.Rand
	h        *harness
	projects [2]*project
	active   int  // index of the configured project
	deleted  bool // the config is deleted
	log      []string
	sent     sync.Map    // *nhn.Client -> *sentCounts
	listed   listedModel // what the metrics must show (I10)
	hostRnd  *rand.Rand  // I13's own draws: the other steps' histories stay as they were
	boundRnd *rand.Rand  // I14 and I15's own draws, likewise
}

func runModel(t *testing.T, seed uint64, steps int) {
	m := &modelRun{t: t, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), hostRnd: rand.New(rand.NewPCG(seed, 9)), boundRnd: rand.New(rand.NewPCG(seed, 14))}
	m.h = newHarness(t)
	eo := emulator.Options{AppKey: testAppKey, AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	emuB := emulator.New(eo)
	srvB := testkit.NewRecorder(t, emuB)
	m.projects[0] = &project{id: "A", emu: m.h.emu, url: m.h.srv.URL, held: map[string]map[string]bool{}, sameDay: map[string]bool{}}
	m.projects[1] = &project{id: "B", emu: emuB, url: srvB.URL, held: map[string]map[string]bool{}, sameDay: map[string]bool{}}
	for _, p := range m.projects {
		for _, n := range modelNames {
			p.put(t, n)
		}
	}
	leaks := goleak.IgnoreCurrent()
	m.noRetryWait()
	m.configure(0)
	defer func() {
		if t.Failed() {
			t.Logf("history:\n  %s", strings.Join(m.log, "\n  "))
		}
	}()
	for i := 0; i < steps && !t.Failed(); i++ {
		m.step()
		m.hostLookup()
		m.boundStep()
		m.afterStep()
	}
	// I7: Cleanup leaves nothing running.
	m.h.b.clean(context.Background())
	m.h.srv.CloseClientConnections()
	srvB.CloseClientConnections()
	if err := goleak.Find(leaks, goleak.IgnoreTopFunction("net/http.(*conn).serve")); err != nil {
		t.Errorf("I7: goroutines survived Cleanup: %v", err)
	}
}

func (m *modelRun) logf(format string, args ...any) {
	m.log = append(m.log, fmt.Sprintf(format, args...))
}

func (m *modelRun) cfgData(p int) map[string]any {
	return map[string]any{
		"app_key": testAppKey, "access_key_id": testKeyID, "secret_access_key": testSecret,
		"endpoint": m.projects[p].url, "auth_endpoint": m.projects[p].url,
		"request_timeout": "5s", "refresh_interval": "10s",
	}
}

func (m *modelRun) configure(p int) {
	resp, err := m.h.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "config", Data: m.cfgData(p), Storage: m.h.storage, MountPoint: "nhncert/"})
	if err != nil || (resp != nil && resp.IsError()) {
		m.t.Fatalf("config write: %v %v", err, resp)
	}
	m.active, m.deleted = p, false
	m.forgetListed()
}

// noRetryWait makes every client of the current backend retry without
// sleeping, from its first request on.
func (m *modelRun) noRetryWait() {
	m.h.b.newClient = func(cfg nhn.Config) nhnClient {
		cfg.Sleep = noWait
		cfg.ListBound = nhn.ListBound{Certificates: modelListBound}
		n := &sentCounts{}
		ct := &countingTransport{next: http.DefaultTransport.(*http.Transport).Clone(), n: n}
		cfg.Transport = ct
		c := nhn.New(cfg)
		ct.c = c
		m.sent.Store(c, n)
		return c
	}
}

func (m *modelRun) step() {
	t := m.t
	p := m.projects[m.active]
	name := modelNames[m.rnd.IntN(len(modelNames))]
	switch op := m.rnd.IntN(21); op {
	case 0, 1, 2, 3: // concurrent reads
		if m.deleted {
			m.configure(m.active)
			m.logf("config written back (project %s)", p.id)
			return
		}
		k := 1 + m.rnd.IntN(4)
		refresh := m.rnd.IntN(5) == 0
		m.logf("%d concurrent reads (refresh=%v)", k, refresh)
		names := make([]string, k)
		for i := range names {
			names[i] = modelNames[m.rnd.IntN(len(modelNames))]
		}
		sess := mustSession(m.h)
		gen := sess.cfg.Generation
		waiting := map[string]bool{}
		for _, n := range modelNames {
			if _, ok := m.h.b.cache.retry.pending(gen, n, time.Now()); ok {
				waiting[n] = true
			}
		}
		counts := m.countsOf(sess.client)
		before := map[string]int64{}
		for n := range waiting {
			before[n] = counts.filesFor(n)
		}
		rs := m.concurrently(k, func(i int) readResult { return m.read(names[i], refresh && i == 0) })
		for n := range waiting {
			if d := counts.filesFor(n) - before[n]; d > 0 && !refresh {
				m.t.Errorf("I8: reads asked NHN %d times for %s inside its retry window", d, n)
			}
		}
		for _, r := range rs {
			m.checkRead(r, m.active)
			if r.err == nil && p.down && m.isAged(r.name) {
				m.checkStale(r)
			}
		}
	case 4: // renewal in NHN
		q := m.projects[m.rnd.IntN(2)]
		if _, ok := q.emu.Chain(name); !ok {
			return
		}
		ch, err := q.emu.Rotate(name)
		if err != nil {
			t.Fatal(err)
		}
		q.note(name, ch)
		delete(q.sameDay, name)
		m.logf("renewed %s in %s", name, q.id)
	case 5: // delete in NHN, or re-register (a new certificateId)
		q := m.projects[m.rnd.IntN(2)]
		if _, ok := q.emu.Chain(name); ok && m.rnd.IntN(2) == 0 {
			q.emu.Remove(name)
			m.logf("removed %s from %s", name, q.id)
		} else {
			q.emu.Remove(name)
			q.put(t, name)
			delete(q.sameDay, name)
			m.logf("re-registered %s in %s", name, q.id)
		}
	case 15: // a same-expiry reissue on the same day: the list looks the same
		q := m.projects[m.rnd.IntN(2)]
		old, ok := q.emu.Chain(name)
		if !ok {
			return
		}
		ch, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: name, DNSNames: old.Leaf.DNSNames, NotBefore: old.Leaf.NotBefore, NotAfter: old.Leaf.NotAfter})
		if err != nil {
			t.Fatal(err)
		}
		q.emu.PutChain(name, ch, emulator.FileOptions{})
		q.note(name, ch)
		q.sameDay[name] = true
		m.logf("reissued %s in %s with the same expiry", name, q.id)
	case 6: // outage starts or ends
		p.down = !p.down
		if p.down {
			p.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
		} else {
			p.emu.ClearFault()
		}
		m.logf("project %s down=%v", p.id, p.down)
	case 7: // slow downloads
		d := time.Duration(m.rnd.IntN(3)) * 15 * time.Millisecond
		p.emu.SetLatency(d)
		m.logf("project %s latency %s", p.id, d)
	case 8: // a list that loses names
		var lost []string
		for _, n := range modelNames {
			if m.rnd.IntN(3) == 0 {
				lost = append(lost, n)
			}
		}
		p.emu.SetUnlisted(lost...)
		p.unlisted = len(lost) > 0
		p.lost = lost
		m.logf("project %s list loses %v", p.id, lost)
	case 9: // copies come due
		for _, n := range modelNames {
			if se, _ := readStoredEntry(context.Background(), m.h.storage, n); se != nil {
				m.h.age(n, 2*time.Hour)
			}
		}
		m.logf("every copy aged past cache_ttl")
	case 10: // config write, same identity
		if !m.deleted {
			m.configure(m.active)
			m.logf("config rewritten, same identity")
		}
	case 11, 12: // a config change with reads and a run in flight
		m.changeConfigDuringWork()
	case 13: // restart: a new backend on the same storage
		m.h.b.clean(context.Background())
		m.h.b = m.h.newBackend(m.h.storage)
		m.noRetryWait()
		m.forgetListed()
		m.logf("restart")
	case 17, 18, 19, 20: // passphrases racing reads, lists, tokens (model_steps_test.go)
		m.stepMore(op)
	default: // a background run alone (14, 16)
		m.run()
	}
}

// run is a background run alone; with NHN up and its list complete it is
// held to I4 and I5.
func (m *modelRun) run() {
	if m.deleted {
		return
	}
	p := m.projects[m.active]
	sess := mustSession(m.h)
	m.h.b.refresher.pace = func(ctx context.Context, _ <-chan struct{}, _ time.Duration) pauseResult {
		if ctx.Err() != nil {
			return pauseEnd
		}
		return paused
	}
	clean := !p.down && p.emu.Latency() == 0
	unlistedBefore := p.unlisted
	// A read returns before the download it shared may have stored its
	// copy (downloads are detached from their readers): wait for those
	// in flight to land before counting what the run starts from, or I5
	// counts a copy that landed after the count (seed 1796298273223565739
	// under -race: "downloaded 4 times for 3 cached certificates").
	m.h.b.cache.gate.work.Wait()
	storedKeys, memKeys, cached := m.cachedBeforeRun(sess.cfg.Generation)
	byNameBefore := map[string]int64{}
	for _, n := range modelNames {
		byNameBefore[n] = m.countsOf(sess.client).filesFor(n)
	}
	before := m.sentBy(sess.client)
	stats, _, err := m.h.b.refreshRun(context.Background(), m.h.storage, sess, time.Now().Add(sess.cfg.RefreshInterval))
	after := m.sentBy(sess.client)
	m.logf("run: %+v err=%v", stats, err)
	if !p.down && after.lists > before.lists {
		m.recordListed("all", m.shownBy(p))
	}
	if !clean || unlistedBefore {
		return
	}
	// I5.
	// One list; twice when NHN rejected the token held and a new one was
	// issued (v1.3 tries once more after a 401).
	if n := after.lists - before.lists; n < 1 || n > 2 || (n == 2 && after.tokens == before.tokens) {
		m.t.Errorf("I5: the run listed %d times (tokens asked for meanwhile: %d)", n, after.tokens-before.tokens)
	}
	if n := after.files - before.files; n > int64(cached) {
		got := map[string]int64{}
		for _, nm := range modelNames {
			if d := m.countsOf(sess.client).filesFor(nm) - byNameBefore[nm]; d > 0 {
				got[nm] = d
			}
		}
		m.t.Errorf("I5: the run downloaded %d times for %d cached certificates (stored %v, in memory %v, downloads %v)", n, cached, storedKeys, memKeys, got)
	}
	// I4, for the names the run did not leave to their retry window.
	for _, n := range modelNames {
		se, _ := readStoredEntry(context.Background(), m.h.storage, n)
		cur, held := p.current(n)
		_, waiting := m.h.b.cache.retry.pending(sess.cfg.Generation, n, time.Now())
		switch {
		case se == nil, waiting:
		case !held:
			m.t.Errorf("I4: %s is stored after a run although project %s no longer has it", n, p.id)
		default:
			b, err := certfile.Parse(se.File, nil)
			if err != nil {
				m.t.Fatalf("stored %s does not parse: %v", n, err)
			}
			if got := emulator.FormatSerial(b.Leaf.SerialNumber); got != cur && !(p.sameDay[n] && p.held[n][got]) {
				m.t.Errorf("I4: after a run, %s is stored with serial %s; project %s lists %s", n, got, p.id, cur)
			}
		}
	}
	m.checkHostsAfterRun(p, sess)
}

// changeConfigDuringWork deletes the config or switches to the other
// project while reads and a background run are in flight, then holds the
// storage and memory to I3.
func (m *modelRun) changeConfigDuringWork() {
	if m.deleted {
		m.configure(m.active)
		m.logf("config written back (project %s)", m.projects[m.active].id)
		return
	}
	from := m.active
	del := m.rnd.IntN(2) == 0
	sess := mustSession(m.h)
	m.h.b.refresher.pace = func(ctx context.Context, _ <-chan struct{}, _ time.Duration) pauseResult {
		if ctx.Err() != nil {
			return pauseEnd
		}
		return paused
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, _ = m.h.b.refreshRun(context.Background(), m.h.storage, sess, time.Now().Add(sess.cfg.RefreshInterval))
	}()
	k := 1 + m.rnd.IntN(4)
	results := make(chan readResult, k)
	for i := 0; i < k; i++ {
		wg.Add(1)
		name := modelNames[m.rnd.IntN(len(modelNames))]
		go func() { defer wg.Done(); results <- m.read(name, false) }()
	}
	if del {
		_, err := m.h.request(logical.DeleteOperation, "config", nil)
		if err != nil {
			m.t.Fatalf("config delete: %v", err)
		}
		m.deleted = true
		m.logf("config deleted with %d reads and a run in flight", k)
	} else {
		m.configure(1 - from)
		m.logf("switched to project %s with %d reads and a run in flight", m.projects[m.active].id, k)
	}
	wg.Wait()
	close(results)
	for r := range results {
		m.checkRead(r, from, m.active)
	}
	m.forgetListed()
	m.checkGeneration()
}
