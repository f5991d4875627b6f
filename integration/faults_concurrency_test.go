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
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

// faultOutageHerd reads one cached name 20 times at once during an
// outage: the reads share one attempt sequence.
func faultOutageHerd(t *testing.T, e *env) {
	v := e.vault
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
}

// faultRotatingFile overlaps reads while every download rotates the file:
// each answer is one matching pair; it returns its row of the summary
// table.
func faultRotatingFile(t *testing.T, e *env) string {
	v := e.vault
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
		certs := testkit.Certificates(t, []byte(certPEM))
		if len(certs) == 0 {
			t.Fatalf("read %d: no CERTIFICATE block in %q", i, certPEM)
		}
		leaf := certs[0]
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
	return fmt.Sprintf("| rotating | the file changes on every download | %d overlapping reads: HTTP 200, each a matching pair (%d serials) in %s | | | |",
		n, len(serials), took.Round(10*time.Millisecond))
}

// faultSlowDownload has a download NHN answered before a rotation finish
// after a refresh=true read got the rotated file.
func faultSlowDownload(t *testing.T, e *env) {
	v := e.vault
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
