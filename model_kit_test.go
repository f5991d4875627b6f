package nhncert

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// The model test's view of NHN (two projects) and of a read's answer; the
// histories and invariants are in model_test.go.

// project is one emulated NHN project and what the model knows of it.
type project struct {
	id       string
	emu      *emulator.Server
	url      string
	held     map[string]map[string]bool // name -> every serial held so far
	down     bool
	unlisted bool     // the list leaves names out (SetUnlisted)
	lost     []string // the names it leaves out
	// sameDay names were reissued with the same expiry on the same day
	// (same certificateId): the list cannot show it, so a run need not
	// notice (the copy is downloaded again when it falls due).
	sameDay map[string]bool
}

func (p *project) current(name string) (string, bool) {
	ch, ok := p.emu.Chain(name)
	if !ok {
		return "", false
	}
	return emulator.FormatSerial(ch.Leaf.SerialNumber), true
}

func (p *project) put(t *testing.T, name string) {
	ch, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: name, DNSNames: modelSANs(name)})
	if err != nil {
		t.Fatal(err)
	}
	p.emu.PutChain(name, ch, emulator.FileOptions{})
	p.note(name, ch)
}

func (p *project) note(name string, ch *emulator.Chain) {
	if p.held[name] == nil {
		p.held[name] = map[string]bool{}
	}
	p.held[name][emulator.FormatSerial(ch.Leaf.SerialNumber)] = true
}

// readResult is one read's answer, with the projects it may come from.
type readResult struct {
	name, serial string
	err          error
	warnings     []string
	certPEM, key string
}

func (m *modelRun) read(name string, refresh bool) readResult {
	data := map[string]any{}
	if refresh {
		data["refresh"] = true
	}
	resp, err := m.h.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation, Path: "certs/" + name, Data: data, Storage: m.h.storage, MountPoint: "nhncert/"})
	r := readResult{name: name, err: err}
	if err == nil && resp != nil && resp.IsError() {
		r.err = resp.Error()
	}
	if r.err == nil && resp != nil {
		r.serial, _ = resp.Data["serial_number"].(string)
		r.certPEM, _ = resp.Data["certificate"].(string)
		r.key, _ = resp.Data["private_key"].(string)
		r.warnings = resp.Warnings
	}
	return r
}

// checkRead holds a successful read to I1 and I2; allowed are the
// projects the read may have been served from.
func (m *modelRun) checkRead(r readResult, allowed ...int) {
	if r.err != nil {
		return
	}
	if _, err := tls.X509KeyPair([]byte(r.certPEM), []byte(r.key)); err != nil {
		m.t.Errorf("I1: %s served a certificate and key that do not belong together: %v", r.name, err)
	}
	for _, p := range allowed {
		if m.projects[p].held[r.name][r.serial] {
			return
		}
	}
	m.t.Errorf("I2: %s served serial %s, never held under that name by project(s) %v", r.name, r.serial, allowed)
}

// sentCounts are the requests one NHN client of the engine sent. I5 counts
// what a run's own client sent, not what the emulator received meanwhile: a
// request a retired config's download sent just before its cancellation
// may reach the emulator during a later run.
type sentCounts struct {
	tokens, lists, files atomic.Int64
	late                 atomic.Int64 // sent after the client was closed (I11)
	rejectedFiles        atomic.Int64 // downloads NHN answered 401 (a revoked token)
	mu                   sync.Mutex
	byName               map[string]int64 // downloads
}

type countingTransport struct {
	next http.RoundTripper
	n    *sentCounts
	c    *nhn.Client // set once the client is made
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	// I11: a request that starts, live, on a closed client carries the
	// credentials of a config that was deleted or replaced.
	if c.c != nil && c.c.Closed() && r.Context().Err() == nil {
		c.n.late.Add(1)
	}
	switch p := r.URL.Path; {
	case strings.HasSuffix(p, "/oauth2/token/create"):
		c.n.tokens.Add(1)
	case strings.HasSuffix(p, "/files"):
		c.n.files.Add(1)
		seg := strings.TrimSuffix(r.URL.EscapedPath(), "/files")
		name, err := url.PathUnescape(seg[strings.LastIndexByte(seg, '/')+1:])
		if err == nil {
			c.n.mu.Lock()
			if c.n.byName == nil {
				c.n.byName = map[string]int64{}
			}
			c.n.byName[name]++
			c.n.mu.Unlock()
		}
	case strings.HasSuffix(p, "/certificates"):
		c.n.lists.Add(1)
	}
	resp, err := c.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && strings.HasSuffix(r.URL.Path, "/files") {
		c.n.rejectedFiles.Add(1)
	}
	return resp, err
}

// CloseIdleConnections lets the client's close reach the transport.
func (c *countingTransport) CloseIdleConnections() {
	if t, ok := c.next.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// filesFor is how many times the client downloaded name.
func (n *sentCounts) filesFor(name string) int64 {
	if n == nil {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byName[name]
}

// sent is a snapshot of a client's counts.
type sent struct{ tokens, lists, files int64 }

func (n *sentCounts) snapshot() sent {
	if n == nil {
		return sent{}
	}
	return sent{n.tokens.Load(), n.lists.Load(), n.files.Load()}
}

// countsOf returns what c has sent (nil for a client built before the
// model's hook).
func (m *modelRun) countsOf(c nhnClient) *sentCounts {
	n, _ := m.sent.Load(c)
	sc, _ := n.(*sentCounts)
	return sc
}

// sentBy returns what c has sent so far.
func (m *modelRun) sentBy(c nhnClient) sent { return m.countsOf(c).snapshot() }

// concurrently runs k copies of f and returns their results.
func (m *modelRun) concurrently(k int, f func(i int) readResult) []readResult {
	out := make([]readResult, k)
	var wg sync.WaitGroup
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); out[i] = f(i) }()
	}
	wg.Wait()
	return out
}

// checkGeneration is I3.
func (m *modelRun) checkGeneration() {
	keys := m.h.cacheKeys()
	if m.deleted {
		if len(keys) != 0 {
			m.t.Errorf("I3: %d certificates in storage after the config was deleted", len(keys))
		}
		if n := m.h.b.cache.memoryLen(); n != 0 {
			m.t.Errorf("I3: %d certificates in memory after the config was deleted", n)
		}
		return
	}
	gen := mustSession(m.h).cfg.Generation
	for _, k := range keys {
		se, err := readStoredEntryAt(context.Background(), m.h.storage, cacheStoragePrefix+k)
		if err != nil || se == nil {
			continue
		}
		if se.Generation != gen {
			m.t.Errorf("I3: %s is stored under an old config's generation after the switch", se.Name)
		}
	}
	for _, e := range m.h.b.cache.memory.Values() {
		if e.generation != gen {
			m.t.Errorf("I3: %s is in memory under an old config's generation after the switch", e.name)
		}
	}
}

// isAged reports whether name's stored copy is past cache_ttl.
func (m *modelRun) isAged(name string) bool {
	se, _ := readStoredEntry(context.Background(), m.h.storage, name)
	return se != nil && time.Since(se.FetchedAt) > time.Hour
}

// checkStale is I6.
func (m *modelRun) checkStale(r readResult) {
	for _, w := range r.warnings {
		if strings.Contains(w, "may be stale") {
			return
		}
	}
	m.t.Errorf("I6: %s was served past cache_ttl while NHN is down without the stale warning (warnings %q)", r.name, r.warnings)
}

// cachedBeforeRun is what a run starts from (I5): the names stored, the
// names in memory, and how many certificates of the live config are
// cached, in storage or in memory (a copy in memory is cached as much as
// one in storage: the run refreshes both). A copy in memory that storage
// does not hold is logged and counted (memoryOnly).
func (m *modelRun) cachedBeforeRun(gen string) (storedKeys, memKeys []string, cached int) {
	cachedNames := map[string]bool{}
	for n := range m.storedSerials() {
		storedKeys = append(storedKeys, n)
		cachedNames[n] = true
	}
	for _, e := range m.h.b.cache.memory.Values() {
		memKeys = append(memKeys, e.name)
		if e.generation == gen {
			if !cachedNames[e.name] {
				m.logf("memory holds %s (fetched %s) that storage does not", e.name, e.fetchedAt.Format(time.RFC3339Nano))
				memoryOnly.Add(1)
			}
			cachedNames[e.name] = true
		}
	}
	return storedKeys, memKeys, len(cachedNames)
}
