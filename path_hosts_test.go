package nhncert

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/require"
	"software.sslmate.com/src/go-pkcs12"
)

// hostsFixture registers, in the emulator, certificates for example.com
// and a stranger:
//
//	example.com       example.com, www.example.com   valid 90 days
//	example.com-2027  www.example.com                valid 400 days (the newest)
//	*.example.com     *.example.com                  valid 200 days
//	example.com-old   www.example.com                expired 10 days ago
//	other.org         other.org                      valid 90 days
func hostsFixture(h *harness) map[string]*emulator.Chain {
	now := time.Now()
	days := func(n int) time.Time { return now.Add(time.Duration(n) * 24 * time.Hour) }
	return map[string]*emulator.Chain{
		"example.com":      h.putChain("example.com", emulator.ChainOptions{DNSNames: []string{"example.com", "www.example.com"}}, emulator.FileOptions{}),
		"example.com-2027": h.putChain("example.com-2027", emulator.ChainOptions{CommonName: "www.example.com", DNSNames: []string{"www.example.com"}, NotAfter: days(400)}, emulator.FileOptions{}),
		"*.example.com":    h.putChain("*.example.com", emulator.ChainOptions{NotAfter: days(200)}, emulator.FileOptions{}),
		"example.com-old": h.putChain("example.com-old", emulator.ChainOptions{CommonName: "www.example.com", DNSNames: []string{"www.example.com"},
			NotBefore: days(-100), NotAfter: days(-10)}, emulator.FileOptions{}),
		"other.org": h.putChain("other.org", emulator.ChainOptions{}, emulator.FileOptions{}),
	}
}

// hostRead reads hosts/<host> and requires success.
func (h *harness) hostRead(host string, data map[string]any) *logical.Response {
	h.t.Helper()
	return h.mustRead("hosts/"+host, data)
}

// hostFails reads hosts/<host>, requires a failure and returns its HTTP
// status and text.
func (h *harness) hostFails(host string, data map[string]any) (int, string) {
	h.t.Helper()
	resp, err := h.request(logical.ReadOperation, "hosts/"+host, data)
	if err != nil {
		coded, ok := err.(logical.HTTPCodedError)
		require.True(h.t, ok, "%v", err)
		return coded.Code(), coded.Error()
	}
	require.True(h.t, resp != nil && resp.IsError(), "hosts/%s must fail: %v", host, resp)
	return http.StatusBadRequest, resp.Error().Error()
}

func (h *harness) hostChosen(host string, data map[string]any) string {
	h.t.Helper()
	return h.hostRead(host, data).Data["certificate_name"].(string)
}

func TestHostsServesTheBestCertificate(t *testing.T) {
	h := newHarness(t)
	chains := hostsFixture(h)
	h.configure(nil)

	resp := h.hostRead("www.example.com", nil)
	require.Equal(t, "example.com-2027", resp.Data["certificate_name"], "the latest NotAfter")
	require.Equal(t, emulator.FormatSerial(chains["example.com-2027"].Leaf.SerialNumber), resp.Data["serial_number"])
	require.Equal(t, certID(t, h, "example.com-2027"), stringify(resp.Data["certificate_id"]))
	// Every field of certs/<name>, the same values.
	direct := h.read("example.com-2027", nil)
	for k, v := range withoutCopyTiming(direct.Data) {
		require.Equal(t, v, resp.Data[k], k)
	}
	for _, k := range []string{"ttl", "rotation_period", "last_vault_rotation"} {
		require.Contains(t, resp.Data, k)
	}

	require.Equal(t, "*.example.com", h.hostChosen("api.example.com", nil), "a wildcard covers one label")
	require.Equal(t, "example.com", h.hostChosen("EXAMPLE.com.", nil), "case and one trailing dot ignored")
	require.Equal(t, "other.org", h.hostChosen("other.org", nil))

	// Narrowed by the list's domains: nothing that does not name
	// example.com was downloaded for its hosts, and never an expired one.
	require.Zero(t, h.fileCalls("example.com-old"), "the list shows it expired")

	// Two labels under the wildcard: no candidate.
	code, msg := h.hostFails("a.b.example.com", nil)
	require.Equal(t, http.StatusNotFound, code, msg)
	require.Contains(t, msg, "0 candidate(s) considered")
}

func TestHostsNarrowsByListedDomains(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	for i := range 20 {
		h.putChain("bulk"+strings.Repeat("x", i)+".net", emulator.ChainOptions{}, emulator.FileOptions{})
	}
	h.configure(nil)
	require.Equal(t, "other.org", h.hostChosen("other.org", nil))
	st := h.emu.Stats()
	require.Equal(t, map[string]int64{"other.org": 1}, st.FileCallsByName, "only the candidate's file is downloaded")
}

func TestHostsExpiredOnly404(t *testing.T) {
	h := newHarness(t)
	now := time.Now()
	h.putChain("old-a", emulator.ChainOptions{CommonName: "shop.example.net", NotBefore: now.Add(-100 * 24 * time.Hour), NotAfter: now.Add(-10 * 24 * time.Hour)}, emulator.FileOptions{})
	h.putChain("old-b", emulator.ChainOptions{CommonName: "shop.example.net", NotBefore: now.Add(-100 * 24 * time.Hour), NotAfter: now.Add(-3 * 24 * time.Hour)}, emulator.FileOptions{})
	h.configure(nil)
	code, msg := h.hostFails("shop.example.net", nil)
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, msg, "2 candidate(s) considered, 2 of them expired")
	require.Empty(t, h.emu.Stats().FileCallsByName, "a certificate the list shows expired is never downloaded")

	// Expired by its leaf only (the list's date is today): downloaded,
	// then refused by the leaf, and counted.
	h.emu.Put(emulator.Certificate{Name: "late", Domains: []string{"late.example.net"}, ExpirationDate: now.UTC().Format(time.DateOnly),
		File: mustChain(t, emulator.ChainOptions{CommonName: "late.example.net", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Minute)})})
	_, msg = h.hostFails("late.example.net", map[string]any{"refresh": true})
	require.Contains(t, msg, "1 candidate(s) considered, 1 of them expired")
}

func mustChain(t *testing.T, o emulator.ChainOptions) []byte {
	ch, err := emulator.GenerateChain(o)
	require.NoError(t, err)
	return ch.PEMFile(emulator.FileOptions{})
}

func TestHostsWildcardsOff(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(nil)
	require.Equal(t, true, h.readPath("config", nil).Data["hosts_wildcards"], "default true")
	h.configure(map[string]any{"hosts_wildcards": false})
	require.Equal(t, false, h.readPath("config", nil).Data["hosts_wildcards"])

	code, msg := h.hostFails("api.example.com", nil)
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, msg, "hosts_wildcards is false")
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))

	// An update that leaves it out keeps it.
	h.configure(map[string]any{"cache_ttl": "2h"})
	require.Equal(t, false, h.readPath("config", nil).Data["hosts_wildcards"])
}

func TestHostsRefusesBadNamesWithoutAskingNHN(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(nil)
	before := len(h.srv.Requests())
	for host, rule := range map[string]string{
		"":                  "empty",
		"*.example.com":     `"*" is not allowed`,
		"www.example.com/x": `"/" is not allowed`,
		"a/../../config":    `"/" is not allowed`,
		"192.168.0.1":       "all digits",
		"_dmarc.example":    `"_" is not allowed`,
		"www example.com":   `" " is not allowed`,
		"a..b":              "empty label",
		"웹.example":         "not allowed",
	} {
		code, msg := h.hostFails(host, nil)
		require.Equal(t, http.StatusBadRequest, code, "%q", host)
		require.Contains(t, msg, rule, "%q", host)
		resp, err := h.request(logical.ListOperation, "certs/", map[string]any{"host": host})
		if host == "" {
			continue // host= empty: no filter
		}
		require.NoError(t, err, host)
		require.True(t, resp.IsError(), "list host=%q", host)
	}
	require.Len(t, h.srv.Requests(), before, "nothing reached NHN")
}

func TestHostsFollowsASwitch(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(nil)
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))

	// Next year's certificate, uploaded under a new name.
	h.putChain("www (2028)", emulator.ChainOptions{CommonName: "www.example.com", NotAfter: time.Now().Add(800 * 24 * time.Hour)}, emulator.FileOptions{})
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil), "not listed yet: the known list answers")
	require.Equal(t, "www (2028)", h.hostChosen("www.example.com", map[string]any{"refresh": true}), "refresh=true lists NHN again")

	// And without refresh, after the background run's list.
	h.putChain("www (2029)", emulator.ChainOptions{CommonName: "www.example.com", NotAfter: time.Now().Add(1200 * 24 * time.Hour)}, emulator.FileOptions{})
	h.run()
	require.Equal(t, "www (2029)", h.hostChosen("www.example.com", nil))

	// Deleted upstream: the next best again.
	h.emu.Remove("www (2029)")
	h.run()
	require.Equal(t, "www (2028)", h.hostChosen("www.example.com", nil))
}

func TestHostsRefreshDownloadsTheChosenAgain(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(nil)
	h.hostChosen("www.example.com", nil)
	calls := h.fileCalls("example.com-2027")
	h.hostChosen("www.example.com", nil)
	require.Equal(t, calls, h.fileCalls("example.com-2027"), "cached")
	h.hostChosen("www.example.com", map[string]any{"refresh": true})
	require.Equal(t, calls+1, h.fileCalls("example.com-2027"))
}

// ttl counts to the next list, not to the copy's expiry.
func TestHostsTTLCountsToTheNextList(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(map[string]any{"refresh_interval": 0, "cache_ttl": "1h"})
	h.hostChosen("www.example.com", nil)
	// The list was taken 50 minutes ago; the copy is fresh for an hour.
	h.b.catalog.mu.Lock()
	h.b.catalog.completeAt = time.Now().Add(-50 * time.Minute)
	h.b.catalog.mu.Unlock()
	resp := h.hostRead("www.example.com", nil)
	ttl := resp.Data["ttl"].(int64)
	require.LessOrEqual(t, ttl, int64(10*60+1))
	require.GreaterOrEqual(t, ttl, int64(9*60))
	require.Greater(t, h.read("example.com-2027", nil).Data["ttl"].(int64), int64(50*60), "certs/<name> counts to its copy")

	// With a run scheduled on this node: its check.
	h.b.refresher.nextRunAt.Store(time.Now().Add(40 * time.Second).UnixNano())
	require.LessOrEqual(t, h.hostRead("www.example.com", nil).Data["ttl"].(int64), int64(41))
}

func TestHostsKeystoreAndPKCS8(t *testing.T) {
	h := newHarness(t)
	chains := hostsFixture(h)
	h.configure(nil)
	resp := h.hostRead("www.example.com", map[string]any{"format": "pkcs12_bundle"})
	require.False(t, resp.IsError(), "%v", resp.Error())
	raw, err := base64.StdEncoding.DecodeString(resp.Data["certificate"].(string))
	require.NoError(t, err)
	_, leaf, _, err := pkcs12.DecodeChain(raw, "changeit")
	require.NoError(t, err)
	require.Equal(t, chains["example.com-2027"].Leaf.SerialNumber, leaf.SerialNumber)
	require.Equal(t, "example.com-2027", resp.Data["certificate_name"])

	resp = h.hostRead("www.example.com", map[string]any{"private_key_format": "pkcs8"})
	require.True(t, strings.HasPrefix(resp.Data["private_key"].(string), "-----BEGIN PRIVATE KEY-----"))
	code, _ := h.hostFails("www.example.com", map[string]any{"format": "bogus"})
	require.Equal(t, http.StatusBadRequest, code)
}

func TestHostsCountAsReads(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(nil)
	h.hostChosen("www.example.com", nil) // downloads
	h.hostChosen("www.example.com", nil) // cached
	h.hostFails("nothing.example.org", nil)
	fams, _ := scrape(t, h)
	for result, want := range map[string]float64{"miss": 1, "hit": 1, "error": 1} {
		v, _ := sample(fams, "nhncert_reads_total", "result", result)
		require.Equal(t, want, v, result)
	}
}

func TestCertsListByHost(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(nil)
	resp, err := h.request(logical.ListOperation, "certs/", map[string]any{"host": "WWW.example.com", "status": "all"})
	require.NoError(t, err)
	require.Equal(t, []string{"*.example.com", "example.com", "example.com-2027", "example.com-old"}, resp.Data["keys"])
	require.Contains(t, resp.Data["key_info"].(map[string]any)["example.com"], "domains")
	resp, err = h.request(logical.ListOperation, "certs/", map[string]any{"host": "www.example.com"})
	require.NoError(t, err)
	require.Equal(t, []string{"*.example.com", "example.com", "example.com-2027"}, resp.Data["keys"], "unexpired by default")

	h.configure(map[string]any{"hosts_wildcards": false})
	resp, err = h.request(logical.ListOperation, "certs/", map[string]any{"host": "www.example.com"})
	require.NoError(t, err)
	require.Equal(t, []string{"example.com", "example.com-2027"}, resp.Data["keys"])

	// v1.1 lists no domains: nothing covers.
	h.configure(map[string]any{"api_version": "v1.1"})
	resp, err = h.request(logical.ListOperation, "certs/", map[string]any{"host": "www.example.com"})
	require.NoError(t, err)
	require.Empty(t, resp.Data["keys"])
}

// The list's domains, when they are wrong, only narrow: the leaf decides.
func TestHostsLeafDecides(t *testing.T) {
	h := newHarness(t)
	h.emu.Put(emulator.Certificate{Name: "liar", Domains: []string{"www.example.com"}, ExpirationDate: time.Now().Add(900 * 24 * time.Hour).UTC().Format(time.DateOnly),
		File: mustChain(t, emulator.ChainOptions{CommonName: "elsewhere.example", NotAfter: time.Now().Add(900 * 24 * time.Hour)})})
	hostsFixture(h)
	h.configure(nil)
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))
	require.Equal(t, int64(1), h.fileCalls("liar"), "a candidate by the list is read")
}

func TestHostsNotConfigured(t *testing.T) {
	h := newHarness(t)
	_, msg := h.hostFails("www.example.com", nil)
	require.Contains(t, msg, "not configured")
}

// With no background run scheduled on this node (refresh off, a
// performance standby), a lookup lists NHN itself once the list it knows
// is older than the rotation period, and so follows a switch; while a run
// is scheduled, the run lists, not every lookup.
func TestHostsListsWhenNoRunIsScheduled(t *testing.T) {
	h := newHarness(t)
	hostsFixture(h)
	h.configure(map[string]any{"refresh_interval": 0, "cache_ttl": "1h"})
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil))
	h.putChain("www (2028)", emulator.ChainOptions{CommonName: "www.example.com", NotAfter: time.Now().Add(800 * 24 * time.Hour)}, emulator.FileOptions{})
	lists := h.emu.Stats().ListCalls
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil), "the list known is fresh")
	require.Equal(t, lists, h.emu.Stats().ListCalls)

	h.b.catalog.mu.Lock()
	h.b.catalog.completeAt = time.Now().Add(-61 * time.Minute)
	h.b.catalog.mu.Unlock()
	h.b.refresher.nextRunAt.Store(time.Now().Add(time.Minute).UnixNano())
	require.Equal(t, "example.com-2027", h.hostChosen("www.example.com", nil), "a run is scheduled: it lists")
	require.Equal(t, lists, h.emu.Stats().ListCalls, "a lookup does not list while a run is scheduled")

	h.b.refresher.nextRunAt.Store(0)
	require.Equal(t, "www (2028)", h.hostChosen("www.example.com", nil), "no run scheduled: the lookup lists")
	require.Greater(t, h.emu.Stats().ListCalls, lists)
}

// Equal dates, through the engine: the lowest certificateId NHN lists,
// whatever the names; without IDs (a list from before certificateId), name
// order.
func TestHostsEqualDatesLowestID(t *testing.T) {
	h := newHarness(t)
	nb := time.Now().Add(-time.Hour).Truncate(time.Second)
	na := nb.Add(90 * 24 * time.Hour)
	put := func(name, host string, id int64) {
		h.emu.Put(emulator.Certificate{ID: id, NoID: id == 0, Name: name, Domains: []string{host}, ExpirationDate: na.UTC().Format(time.DateOnly),
			File: mustChain(t, emulator.ChainOptions{CommonName: host, NotBefore: nb, NotAfter: na})})
	}
	put("a-first-by-name", "tie.example.net", 9)
	put("z-last-by-name", "tie.example.net", 4)
	put("m", "tie.example.net", 7)
	put("b-no-id", "noid.example.net", 0)
	put("a-no-id", "noid.example.net", 0)
	put("c-no-id", "noid.example.net", 0)
	h.configure(nil)

	resp := h.hostRead("tie.example.net", nil)
	require.Equal(t, "z-last-by-name", resp.Data["certificate_name"])
	require.Equal(t, int64(4), resp.Data["certificate_id"])

	resp = h.hostRead("noid.example.net", nil)
	require.Equal(t, "a-no-id", resp.Data["certificate_name"])
	require.NotContains(t, resp.Data, "certificate_id", "NHN listed none")
}

// Nothing secret in a hosts lookup's errors, warnings or logs, whatever
// NHN answers: down before any list, a file refused, a token revoked, a
// v1.1 learning pass whose files fail.
func TestHostsSecretsNeverInErrorsOrLogs(t *testing.T) {
	h := newHarness(t)
	chains := hostsFixture(h)
	h.configure(nil)
	check := func(what string, resp *logical.Response, err error) {
		t.Helper()
		var texts []string
		if err != nil {
			texts = append(texts, err.Error())
		}
		if resp != nil {
			texts = append(texts, resp.Warnings...)
			if resp.IsError() {
				texts = append(texts, resp.Error().Error())
			}
		}
		for _, s := range texts {
			h.requireNoSecrets(what, s)
			require.NotContains(t, s, testAppKey, what)
		}
	}
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	resp, err := h.request(logical.ReadOperation, "hosts/www.example.com", nil)
	require.Error(t, err, "no list known, NHN down")
	check("down", resp, err)
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultResult, Target: "files", ResultCode: 52006})
	resp, err = h.request(logical.ReadOperation, "hosts/www.example.com", nil)
	require.Error(t, err, "the candidates cannot be read")
	check("files refused", resp, err)
	h.emu.ClearFault()
	h.hostRead("www.example.com", nil)
	h.emu.RevokeTokens()
	resp, err = h.request(logical.ReadOperation, "hosts/www.example.com", map[string]any{"refresh": true})
	check("token revoked", resp, err)

	h.configure(map[string]any{"api_version": "v1.1"})
	h.b.refresher.pace = func(context.Context, <-chan struct{}, time.Duration) pauseResult { return paused }
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultResult, Target: "files", ResultCode: 52007})
	resp, err = h.request(logical.ReadOperation, "hosts/www.example.com", nil)
	check("v1.1 learning refused", resp, err)
	// Not a 404 that counts the unreadable files as covering nothing: NHN's
	// refusal, as certs/<name> answers it.
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded), "%v", err)
	require.Equal(t, http.StatusBadGateway, coded.Code(), err.Error())
	require.Contains(t, err.Error(), "resultCode 52007")
	h.emu.ClearFault()

	logs := h.logs.String()
	require.NotEmpty(t, logs)
	h.requireNoSecrets("logs", logs)
	require.NotContains(t, logs, "PRIVATE KEY")
	for _, ch := range chains {
		require.NotContains(t, logs, string(ch.KeyPEM[40:80]))
	}
}
