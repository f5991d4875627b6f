package nhncert

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
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
	unlisted bool // the list leaves names out (SetUnlisted)
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
	ch, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: name})
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
