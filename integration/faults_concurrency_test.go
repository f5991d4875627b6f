package integration

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faultOutageHerd reads one cached name 20 times at once during an
// outage: the reads share one attempt sequence.
func faultOutageHerd(t *testing.T, e *env) {
	v := e.vault
	ctx := ctxT(t)
	name := "f-herd.example.com"
	_, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: name})
	require.NoError(t, err)
	mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+name, nil, nil)
	warmed := time.Now()
	require.NoError(t, e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}))
	defer func() { _ = e.emu.admin.ClearFault(ctxT(t)) }()
	waitUntil(t, warmed.Add(faultCacheTTL+50*time.Millisecond), 5*time.Second)
	before := e.emu.stats(t).FileCallsByName[name]
	const n = 20
	res, took := concurrentReads(v, name, n, func(int) url.Values { return nil })
	calls := e.emu.stats(t).FileCallsByName[name] - before
	for i, r := range res {
		assert.Equal(t, 200, r.status, "concurrent read %d during the outage: %s", i, r)
		assert.Contains(t, r.says(), "may be stale", "concurrent read %d during the outage: %s", i, r)
	}
	t.Logf("%d concurrent reads of a cached name during an outage: all answered in %s; NHN saw %d download attempts", n, took.Round(10*time.Millisecond), calls)
	assert.LessOrEqual(t, calls, int64(2*faultAttempts), "%d concurrent reads: download attempts; they should share one download (%d attempts)", n, faultAttempts)
}

// faultRotatingFile overlaps reads while every download rotates the file:
// each answer is one matching pair; it returns its row of the summary
// table.
func faultRotatingFile(t *testing.T, e *env) string {
	v := e.vault
	ctx := ctxT(t)
	name := "f-rotating.example.com"
	_, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: name, KeyType: emulator.RSA})
	require.NoError(t, err)
	mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+name, nil, nil)
	// Every download now rotates the certificate (new key, new
	// serial) first; reads overlap downloads.
	require.NoError(t, e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultRotating, Target: emulator.TargetFiles}))
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
		if !assert.Equal(t, 200, r.status, "read %d while the file changes: %s", i, r) || !assert.NotNil(t, d, "read %d while the file changes: %s", i, r) {
			continue
		}
		certPEM, _ := d["certificate"].(string)
		keyPEM, _ := d["private_key"].(string)
		_, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
		assert.NoError(t, err, "read %d while the file changes: certificate and private_key are not one pair", i)
		certs := testkit.Certificates(t, []byte(certPEM))
		require.NotEmpty(t, certs, "read %d: no CERTIFICATE block in %q", i, certPEM)
		leaf := certs[0]
		if issuer, _ := d["issuing_ca"].(string); issuer != "" {
			assert.NoError(t, leaf.CheckSignatureFrom(parseCertPEM(t, "issuing_ca", issuer)), "read %d: issuing_ca did not sign the leaf", i)
		}
		assert.Equal(t, serialHex(leaf.SerialNumber), d["serial_number"], "read %d: serial_number is not the leaf's", i)
		serials[fmt.Sprint(d["serial_number"])] = true
	}
	require.NoError(t, e.emu.admin.ClearFault(ctx))
	r := readCert(t, v, name, map[string][]string{"refresh": {"true"}})
	assert.Equal(t, emulatorSerial(t, e, name), r.Data["serial_number"], "after the file stopped changing, refresh=true serves another serial than NHN holds")
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
	require.NoError(t, e.enable(m))
	require.NoError(t, e.configureEndpoint(m, proxy.url, "request_timeout=10s", "cache_ttl=3s", "refresh_interval=0"))
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
			require.NoError(t, err)
			path := m + "/certs/" + name
			r0 := mustRaw(t, v, v.rootToken, "GET", path, nil, nil)
			require.Equal(t, 200, r0.status, "first read: %s", r0)
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
				require.FailNow(t, "the held download never reached NHN")
			}
			// NHN rotates; R2 (refresh=true) gets v1.
			v1, err := e.emu.admin.Rotate(ctx, name)
			require.NoError(t, err)
			r2 := mustRaw(t, v, v.rootToken, "GET", path, url.Values{"refresh": {"true"}}, nil)
			require.Equal(t, 200, r2.status, "refresh=true after the rotation: %s; want serial %s", r2, v1.Serial)
			require.Equal(t, v1.Serial, r2.data()["serial_number"], "refresh=true after the rotation: %s", r2)
			// R1 finishes now, with the older answer.
			release()
			var got1 rawResponse
			select {
			case got1 = <-r1:
			case <-time.After(30 * time.Second):
				require.FailNow(t, "the held read never finished")
			}
			t.Logf("held read: HTTP %d serial %v warnings %q", got1.status, got1.data()["serial_number"], got1.warnings())

			if c.nhnDown {
				require.NoError(t, e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}))
				defer func() { _ = e.emu.admin.ClearFault(ctxT(t)) }()
			}
			// R3, within cache_ttl of v1's download.
			r3 := mustRaw(t, v, v.rootToken, "GET", path, nil, nil)
			t.Logf("next read: HTTP %d serial %v warnings %q (v0 %s, v1 %s)", r3.status, r3.data()["serial_number"], r3.warnings(), v0.Serial, v1.Serial)
			bug := fmt.Sprintf("PLUGIN BUG: after refresh=true cached v1 (%s), a slower download begun before it (%s) left the cache with the older copy: the next read gives HTTP %d serial %v, warnings %q; want v1 without a warning",
				v1.Serial, c.id, r3.status, r3.data()["serial_number"], r3.warnings())
			assert.Equal(t, 200, r3.status, bug)
			assert.Equal(t, v1.Serial, r3.data()["serial_number"], bug)
			assert.Empty(t, r3.warnings(), bug)
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
