package nhncert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Host lookups in the model (I13 of model_test.go). The model's
// certificates share hosts: www.shared.example is covered by a.example and
// c.example by name and by b.example's wildcard, api.shared.example by the
// wildcard alone; renewals, deletions and re-registrations move the best
// choice among them.
//
//	I13 Every hosts/<hostname> answer is a certificate and key that belong
//	   together, a file the configured project held under the
//	   certificate_name given, whose leaf covers the host and is valid.
//	   After a background run with NHN up and its list complete, a lookup
//	   answers the contract's best choice among the files NHN holds now
//	   (latest NotAfter, then NotBefore, then lowest certificateId, then
//	   name), or 404 when none covers the host.

var modelHosts = []string{"www.shared.example", "api.shared.example", "a.example", "nowhere.example"}

// modelSANs are the DNS names of a model certificate.
func modelSANs(name string) []string {
	switch name {
	case "a.example", "c.example":
		return []string{name, "www.shared.example"}
	case "b.example":
		return []string{name, "*.shared.example"}
	}
	return []string{name}
}

type hostResult struct {
	host, name, serial, certPEM, key string
	status                           int // 0: answered
	err                              error
}

func (m *modelRun) hostRead(host string, refresh bool) hostResult {
	data := map[string]any{}
	if refresh {
		data["refresh"] = true
	}
	resp, err := m.h.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation, Path: "hosts/" + host, Data: data, Storage: m.h.storage, MountPoint: "nhncert/"})
	r := hostResult{host: host, err: err}
	if coded, ok := err.(logical.HTTPCodedError); ok {
		r.status = coded.Code()
	}
	if err == nil && resp != nil && resp.IsError() {
		r.err, r.status = resp.Error(), 400
	}
	if r.err == nil && resp != nil {
		r.name, _ = resp.Data["certificate_name"].(string)
		r.serial, _ = resp.Data["serial_number"].(string)
		r.certPEM, _ = resp.Data["certificate"].(string)
		r.key, _ = resp.Data["private_key"].(string)
	}
	return r
}

// hostLookup is a lookup after a step, one step in three, drawn from the
// model's own host stream; held to I13's first part.
func (m *modelRun) hostLookup() {
	if m.deleted || m.hostRnd.IntN(3) != 0 {
		return
	}
	host := modelHosts[m.hostRnd.IntN(len(modelHosts))]
	refresh := m.hostRnd.IntN(5) == 0
	sess := mustSession(m.h)
	before := m.sentBy(sess.client)
	r := m.hostRead(host, refresh)
	m.logf("hosts/%s (refresh=%v): %q %s err=%v", host, refresh, r.name, r.serial, r.err)
	m.checkHost(r)
	// A lookup lists NHN (status ALL) when it knows no complete list or
	// is asked to: the metrics (I10) then show that list, as after a run.
	if p := m.projects[m.active]; !p.down && m.sentBy(sess.client).lists > before.lists {
		m.recordListed("all", m.shownBy(p))
	}
}

func (m *modelRun) checkHost(r hostResult) {
	if r.err != nil {
		return
	}
	if _, err := tls.X509KeyPair([]byte(r.certPEM), []byte(r.key)); err != nil {
		m.t.Errorf("I13: hosts/%s served a certificate and key that do not belong together: %v", r.host, err)
	}
	if !m.projects[m.active].held[r.name][r.serial] {
		m.t.Errorf("I13: hosts/%s served %q serial %s, never held under that name by project %s", r.host, r.name, r.serial, m.projects[m.active].id)
	}
	block, _ := pem.Decode([]byte(r.certPEM))
	if block == nil {
		m.t.Errorf("I13: hosts/%s served no PEM certificate", r.host)
		return
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		m.t.Errorf("I13: hosts/%s: %v", r.host, err)
		return
	}
	if leaf.VerifyHostname(r.host) != nil {
		m.t.Errorf("I13: hosts/%s served %q, whose leaf does not cover the host (%v)", r.host, r.name, leaf.DNSNames)
	}
	if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		m.t.Errorf("I13: hosts/%s served %q, not valid now", r.host, r.name)
	}
}

// modelCand is a certificate covering a host, as the model knows it.
type modelCand struct {
	name                string
	id                  int64
	notBefore, notAfter time.Time
}

// modelBest is the contract's choice, written out apart from hostmatch:
// among the certificates valid at now, the latest NotAfter, then the
// latest NotBefore, then the lowest certificateId, then the first name.
func modelBest(cands []modelCand, now time.Time) string {
	var best *modelCand
	for i := range cands {
		c := &cands[i]
		if now.Before(c.notBefore) || now.After(c.notAfter) {
			continue
		}
		if best == nil {
			best = c
			continue
		}
		better := false
		switch {
		case !c.notAfter.Equal(best.notAfter):
			better = c.notAfter.After(best.notAfter)
		case !c.notBefore.Equal(best.notBefore):
			better = c.notBefore.After(best.notBefore)
		case c.id != best.id:
			better = c.id < best.id
		default:
			better = c.name < best.name
		}
		if better {
			best = c
		}
	}
	if best == nil {
		return ""
	}
	return best.name
}

// checkHostsAfterRun is I13's second part, after a clean run of p.
func (m *modelRun) checkHostsAfterRun(p *project, sess *session) {
	for _, host := range modelHosts {
		var cands []modelCand
		skip := false
		for _, n := range modelNames {
			ch, ok := p.emu.Chain(n)
			if !ok || ch.Leaf.VerifyHostname(host) != nil {
				continue
			}
			if _, waiting := m.h.b.cache.retry.pending(sess.cfg.Generation, n, time.Now()); waiting {
				skip = true // left to its retry window by the run: an older copy may answer
			}
			c, _ := p.emu.Get(n)
			cands = append(cands, modelCand{name: n, id: c.ID, notBefore: ch.Leaf.NotBefore, notAfter: ch.Leaf.NotAfter})
		}
		if skip {
			continue
		}
		r := m.hostRead(host, false)
		m.logf("after the run, hosts/%s: %q %s err=%v", host, r.name, r.serial, r.err)
		want := modelBest(cands, time.Now())
		if want == "" {
			if r.status != 404 {
				m.t.Errorf("I13: after a run, hosts/%s answered %q (err %v); no certificate of project %s covers it", host, r.name, r.err, p.id)
			}
			continue
		}
		cur, _ := p.current(want)
		switch {
		case r.err != nil:
			m.t.Errorf("I13: after a run, hosts/%s failed (%v); project %s holds %s for it", host, r.err, p.id, want)
		case r.name != want:
			m.t.Errorf("I13: after a run, hosts/%s answered %q; the best of project %s is %s", host, r.name, p.id, want)
		case r.serial != cur && !(p.sameDay[want] && p.held[want][r.serial]):
			m.t.Errorf("I13: after a run, hosts/%s answered %s with serial %s; project %s holds %s", host, want, r.serial, p.id, cur)
		}
		m.checkHost(r)
	}
}
