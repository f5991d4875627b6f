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

// faultExpiredCertificate reads a certificate past its NotAfter that NHN
// still serves, with NHN up and then down; it returns its row of the
// summary table.
func faultExpiredCertificate(t *testing.T, e *env) string {
	v := e.vault
	ctx := ctxT(t)
	const name = "expired.example.com"
	r, d := timedRaw(t, v, "GET", mount+"/certs/"+name, nil)
	t.Logf("expired certificate, NHN up: %s", obs{r.status, d, r.says(), -1})
	assert.Equal(t, 200, r.status, "read of an expired certificate NHN still serves: %s; want 200 with a warning \"the certificate expired at ...\"", r)
	assert.Contains(t, r.says(), "the certificate expired at", "read of an expired certificate NHN still serves: %s; want 200 with a warning \"the certificate expired at ...\"", r)
	require.NoError(t, e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}))
	defer func() { _ = e.emu.admin.ClearFault(ctxT(t)) }()
	for _, p := range []string{"certs/", "metadata/"} {
		r, d = timedRaw(t, v, "GET", mount+"/"+p+name, nil)
		t.Logf("expired certificate (%s), NHN down: %s", p, obs{r.status, d, r.says(), -1})
		assertExpiredRefusal(t, r, "%s%s while NHN is down: %s; want 502 saying the cached copy expired and is not served", p, name, r)
		assert.NotContains(t, string(r.body), "BEGIN", "%s%s: the refusal holds PEM data", p, name)
		assert.LessOrEqual(t, d, faultBudget, "%s%s took %s, more than %s", p, name, d, faultBudget)
	}
	return fmt.Sprintf("| expired-cached | certificate past NotAfter, NHN up then down | NHN up: %s; NHN down: %s | | | |",
		"HTTP 200 + warning \"the certificate expired at ...\"", obs{r.status, d, r.says(), -1})
}

// faultExpiresWhileCached has a cached certificate pass its NotAfter
// within cache_ttl, then NHN serve it still, then the renewed one; it
// returns its row of the summary table.
func faultExpiresWhileCached(t *testing.T, e *env) string {
	v := e.vault
	ctx := ctxT(t)
	// A mount of its own behind a proxy that serves a certificate
	// valid for a few seconds; cache_ttl stays at its default (1h).
	const m, name = "nhncert-expiry", "short.example.com"
	proxy := newNHNProxy(t, e.emu.url)
	require.NoError(t, e.enable(m))
	require.NoError(t, e.configureEndpoint(m, proxy.url, "request_timeout=1s", "refresh_interval=0"))
	short, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: name, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(3 * time.Second)})
	require.NoError(t, err)
	proxy.override(name, short.PEMFile(emulator.FileOptions{}))
	r, d := timedRaw(t, v, "GET", m+"/certs/"+name, nil)
	require.Equal(t, 200, r.status, "first read of a certificate valid for 3 more seconds: %s", r)
	require.Empty(t, r.warnings(), "first read of a certificate valid for 3 more seconds: %s", r)
	t.Logf("valid for 3s, first read: %s", obs{r.status, d, r.says(), -1})
	waitUntil(t, short.Leaf.NotAfter.Add(100*time.Millisecond), 10*time.Second)

	// Past NotAfter, well within cache_ttl, NHN down.
	proxy.clearOverride(name)
	require.NoError(t, e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}))
	defer func() { _ = e.emu.admin.ClearFault(ctxT(t)) }()
	r, d = timedRaw(t, v, "GET", m+"/certs/"+name, nil)
	t.Logf("expired while cached (within cache_ttl), NHN down: %s", obs{r.status, d, r.says(), -1})
	assertExpiredRefusal(t, r, "a certificate that expired while cached, NHN down: %s; want 502 saying the cached copy expired and is not served", r)
	expiredDown := obs{r.status, d, r.says(), -1}
	require.NoError(t, e.emu.admin.ClearFault(ctx))

	// NHN up but still holding the expired file. The outage opened the
	// name's retry window: until it passes (about 10 s) reads are refused
	// the same way without asking NHN; the first read after it asks.
	proxy.override(name, short.PEMFile(emulator.FileOptions{}))
	deadline := time.Now().Add(freshBound)
	waited := 0
	for {
		r, d = timedRaw(t, v, "GET", m+"/certs/"+name, nil)
		if r.status == 200 || !strings.Contains(r.says(), "it is asked again at") {
			break
		}
		assertExpiredRefusal(t, r, "a read within the retry window: %s; want the refusal of the expired copy", r)
		require.True(t, time.Now().Before(deadline), "still refused %s after NHN recovered: %s", freshBound, r)
		waited++
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("expired, NHN up and still serving it: %s, after %d refusal(s) within the retry window", obs{r.status, d, r.says(), -1}, waited)
	assert.Equal(t, 200, r.status, "an expired certificate NHN still serves: %s; want 200 with a warning that it expired", r)
	assert.Contains(t, r.says(), "the certificate expired at", "an expired certificate NHN still serves: %s; want 200 with a warning that it expired", r)
	expiredUp := obs{r.status, d, r.says(), -1}

	// NHN gets the renewed certificate.
	renewed, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: name})
	require.NoError(t, err)
	proxy.override(name, renewed.PEMFile(emulator.FileOptions{}))
	r, d = timedRaw(t, v, "GET", m+"/certs/"+name, nil)
	assert.Equal(t, 200, r.status, "after NHN got the renewed certificate: %s", r)
	assert.Empty(t, r.warnings(), "after NHN got the renewed certificate: %s", r)
	assert.Equal(t, serialHex(renewed.Leaf.SerialNumber), r.data()["serial_number"], "after NHN got the renewed certificate: %s", r)
	return fmt.Sprintf("| expired-while-cached | a cached certificate passes NotAfter within cache_ttl | NHN down: %s | | | NHN up with the expired file: %s; renewed: %s |",
		expiredDown, expiredUp, obs{r.status, d, r.says(), -1})
}

// assertExpiredRefusal asserts that r refuses a cached copy past its
// NotAfter: HTTP 502 saying the cached copy expired and is not served.
func assertExpiredRefusal(t *testing.T, r rawResponse, msgAndArgs ...any) {
	t.Helper()
	assert.Equal(t, 502, r.status, msgAndArgs...)
	for _, want := range []string{"the cached copy expired at", "is not served"} {
		assert.Contains(t, r.says(), want, msgAndArgs...)
	}
}
