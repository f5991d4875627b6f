package nhncert

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
)

// More of the model's steps and invariants (model_test.go has I1-I8), in
// the contract's words:
//
//	I9  Passphrases racing reads: "Writing or deleting a passphrase drops
//	    that certificate's cached copy": once the write or delete returned
//	    (and the reads racing it returned), no copy of the name with an
//	    encrypted key whose download began before the write is in storage
//	    (a plain key's copy does not depend on the passphrase); every read
//	    served meanwhile holds to I1 and I2. (The model's files are plain:
//	    the encrypted case is TestPassphraseWritesRaceReads's.)
//	I10 The metrics after every step: nhncert_certificate_expiry_timestamp_seconds
//	    holds "every certificate NHN lists now, as far as the last list of
//	    each status showed (a certificate a later list no longer shows,
//	    where its filter covers it, is gone)", and nhncert_certificates
//	    counts the same certificates; none before a list of the config in
//	    force (after a write, a delete, a restart).
//	I11 Old credentials: "no request to NHN that carries them, or a token
//	    issued for them, starts after the delete returns (a token exchange
//	    in flight included)": no client of a deleted or replaced config
//	    starts a request once it was closed.
//	I12 Tokens: "Tokens expire and must be re-issued; a revoked or expired
//	    token is rejected": after NHN rejects every token issued so far
//	    (revoked, or expired), reads go on being served (I1, I2).
//
// The list and key-derivation bounds are I14 and I15
// (model_bounds_test.go).

// listed is what the model expects the metrics to show: nil when unknown
// (a list raced a config change), else name -> listed.
type listedModel struct {
	known bool
	names map[string]bool
}

func (m *modelRun) stepMore(op int) {
	if m.deleted {
		m.configure(m.active)
		m.logf("config written back (project %s)", m.projects[m.active].id)
		return
	}
	switch op {
	case 17, 18:
		m.passphraseRace()
	case 19:
		m.list([]string{"all", "unexpired", "expired"}[m.rnd.IntN(3)])
	case 20:
		p := m.projects[m.active]
		// NHN rejects every token issued so far, as it rejects one that
		// expired (the client's own renewal before expiry is
		// nhn.TestClientRenewsTokenBeforeExpiry's).
		p.emu.RevokeTokens()
		m.logf("project %s revoked (expired) every token", p.id)
		if p.down {
			return
		}
		for _, n := range modelNames {
			r := m.read(n, false)
			m.checkRead(r, m.active)
			if r.err != nil && strings.Contains(r.err.Error(), "HTTP 401") {
				m.t.Errorf("I12: %s after NHN rejected the tokens held: %v", n, r.err)
			}
		}
	}
}

// passphraseRace writes or deletes a passphrase while reads of the name
// are in flight (I9).
func (m *modelRun) passphraseRace() {
	name := modelNames[m.rnd.IntN(len(modelNames))]
	k := 1 + m.rnd.IntN(3)
	del := m.rnd.IntN(3) == 0
	var wg sync.WaitGroup
	results := make(chan readResult, k)
	for range k {
		wg.Add(1)
		go func() { defer wg.Done(); results <- m.read(name, false) }()
	}
	began := time.Now()
	var op logical.Operation = logical.UpdateOperation
	data := map[string]any{"passphrase": "model-pass"}
	if del {
		op, data = logical.DeleteOperation, nil
	}
	if _, err := m.h.request(op, "passphrases/"+name, data); err != nil {
		m.t.Fatalf("passphrase %v: %v", op, err)
	}
	wg.Wait()
	close(results)
	for r := range results {
		m.checkRead(r, m.active)
	}
	m.logf("passphrase of %s %s with %d reads in flight", name, map[bool]string{true: "deleted", false: "written"}[del], k)
	// A plain key does not depend on the passphrase: a download that
	// began before the change and stored after it is the same copy.
	noPassphrase := func() ([]byte, error) { return nil, nil }
	if se, _ := readStoredEntry(context.Background(), m.h.storage, name); se != nil && se.FetchedAt.Before(began) {
		if _, err := certfile.Parse(se.File, noPassphrase); err != nil {
			m.t.Errorf("I9: %s's copy with an encrypted key, downloaded at %s before the passphrase change began at %s, is still stored",
				name, se.FetchedAt.Format(time.RFC3339Nano), began.Format(time.RFC3339Nano))
		}
	}
}

// list lists the certificates with a status filter and keeps what the
// metrics must show (I10).
func (m *modelRun) list(status string) {
	resp, err := m.h.request(logical.ListOperation, "certs/", map[string]any{"status": status})
	if err != nil || resp == nil || resp.IsError() {
		m.logf("list status=%s: failed", status)
		return
	}
	keys, _ := resp.Data["keys"].([]string)
	m.logf("list status=%s: %v", status, keys)
	m.recordListed(status, keys)
}

// recordListed applies a list to what the metrics must show: a complete
// list replaces it; a filtered one removes what its filter covers and it
// no longer shows (every certificate of the model is unexpired).
func (m *modelRun) recordListed(status string, keys []string) {
	if status == "all" || !m.listed.known {
		m.listed = listedModel{known: true, names: map[string]bool{}}
	}
	if status == "unexpired" || status == "all" {
		for n := range m.listed.names {
			delete(m.listed.names, n)
		}
	}
	for _, k := range keys {
		m.listed.names[k] = true
	}
}

// shownBy is what a complete list of p shows now: the names it holds,
// less those a lossy list leaves out.
func (m *modelRun) shownBy(p *project) []string {
	var shown []string
	for _, n := range modelNames {
		if _, held := p.current(n); held && !slices.Contains(p.lost, n) {
			shown = append(shown, n)
		}
	}
	return shown
}

// forgetListed: the config changed or the backend restarted; the metrics
// show no certificate until the next list.
func (m *modelRun) forgetListed() { m.listed = listedModel{known: true, names: map[string]bool{}} }

// afterStep holds every step to I10 and I11.
func (m *modelRun) afterStep() {
	m.sent.Range(func(c, n any) bool {
		if late := n.(*sentCounts).late.Load(); late > 0 {
			m.t.Errorf("I11: %d requests started on a client after its config was deleted or replaced", late)
			n.(*sentCounts).late.Store(0)
		}
		return true
	})
	if !m.listed.known {
		return
	}
	fams, _ := scrape(m.t, m.h)
	var got []string
	if f := fams["nhncert_certificate_expiry_timestamp_seconds"]; f != nil {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "name" {
					got = append(got, l.GetValue())
				}
			}
		}
	}
	var want []string
	for n := range m.listed.names {
		want = append(want, n)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		m.t.Errorf("I10: the expiry family names %v; the last lists showed %v", got, want)
	}
	count := 0.0
	for _, st := range []string{"unexpired", "expired"} {
		v, _ := sample(fams, "nhncert_certificates", "status", st)
		count += v
	}
	if int(count) != len(want) {
		m.t.Errorf("I10: nhncert_certificates counts %v; the last lists showed %d", count, len(want))
	}
}
