package nhncert

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
)

// scrape reads nhncert/metrics as Prometheus would and parses it with
// Prometheus's own text parser; it returns the raw text too.
func scrape(t *testing.T, h *harness) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := h.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation, Path: "metrics", Storage: h.storage, MountPoint: "nhncert/"})
	require.NoError(t, err)
	require.NotNil(t, resp)
	require.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Data[logical.HTTPContentType])
	require.Equal(t, http.StatusOK, resp.Data[logical.HTTPStatusCode])
	body, ok := resp.Data[logical.HTTPRawBody].([]byte)
	require.True(t, ok, "raw body is %T", resp.Data[logical.HTTPRawBody])
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err, "Prometheus cannot parse the scrape:\n%s", body)
	return fams, string(body)
}

// sample returns the value of family's series with exactly these labels
// (name=value pairs), and whether there is one.
func sample(fams map[string]*dto.MetricFamily, family string, labels ...string) (float64, bool) {
	f := fams[family]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// The families and types the contract fixes, with the values a user can
// check against what happened: two certificates listed, one read twice
// (a miss, then a hit), a refresh run, the downloads NHN saw.
func TestMetricsSchemaAndValues(t *testing.T) {
	h := configuredHarness(t, map[string]any{"refresh_interval": "1s"})
	h.b.jitter = func() float64 { return 0 }
	a := h.putChain("a.example", emulator.ChainOptions{}, emulator.FileOptions{})
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	h.putChain("old.example", emulator.ChainOptions{NotBefore: old.Add(-24 * time.Hour), NotAfter: old}, emulator.FileOptions{})
	h.read("a.example", nil)
	h.read("a.example", nil)
	_, err := h.request(logical.ReadOperation, "certs/missing.example", nil)
	require.Error(t, err)

	require.NoError(t, h.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: h.storage}))
	require.Eventually(t, func() bool { return h.b.refresher.ran.Load() >= 1 }, 30*time.Second, 20*time.Millisecond)
	fams, text := scrape(t, h)

	types := map[string]dto.MetricType{
		"nhncert_certificate_expiry_timestamp_seconds":   dto.MetricType_GAUGE,
		"nhncert_certificates":                           dto.MetricType_GAUGE,
		"nhncert_cached_certificates":                    dto.MetricType_GAUGE,
		"nhncert_refresh_runs_total":                     dto.MetricType_COUNTER,
		"nhncert_refresh_last_success_timestamp_seconds": dto.MetricType_GAUGE,
		"nhncert_refresh_run_duration_seconds":           dto.MetricType_HISTOGRAM,
		"nhncert_refresh_deferred":                       dto.MetricType_GAUGE,
		"nhncert_refresh_panics_total":                   dto.MetricType_COUNTER,
		"nhncert_upstream_requests_total":                dto.MetricType_COUNTER,
		"nhncert_upstream_request_duration_seconds":      dto.MetricType_HISTOGRAM,
		"nhncert_reads_total":                            dto.MetricType_COUNTER,
		"nhncert_token_expiry_timestamp_seconds":         dto.MetricType_GAUGE,
		"nhncert_build_info":                             dto.MetricType_GAUGE,
	}
	var names []string
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	for n, typ := range types {
		require.Contains(t, fams, n, "families served: %v", names)
		require.Equal(t, typ, fams[n].GetType(), n)
	}
	for _, n := range names {
		require.Contains(t, types, n, "a family the contract does not name")
	}

	v, ok := sample(fams, "nhncert_certificate_expiry_timestamp_seconds", "name", "a.example", "certificate_id", certID(t, h, "a.example"))
	require.True(t, ok, "a.example's expiry:\n%s", text)
	require.Equal(t, float64(a.Leaf.NotAfter.Unix()), v, "the cached copy's NotAfter")
	_, ok = sample(fams, "nhncert_certificate_expiry_timestamp_seconds", "name", "old.example", "certificate_id", certID(t, h, "old.example"))
	require.True(t, ok, "every certificate of the last list, cached or not")
	for status, want := range map[string]float64{"unexpired": 1, "expired": 1} {
		v, _ := sample(fams, "nhncert_certificates", "status", status)
		require.Equal(t, want, v, status)
	}
	for result, want := range map[string]float64{"hit": 1, "miss": 1, "error": 1, "stale": 0} {
		v, ok := sample(fams, "nhncert_reads_total", "result", result)
		require.True(t, ok, result)
		require.Equal(t, want, v, "reads %s", result)
	}
	st := h.emu.Stats()
	downloads := 0.0
	for _, o := range []string{"ok", "not_found"} {
		v, _ := sample(fams, "nhncert_upstream_requests_total", "call", "download", "outcome", o)
		downloads += v
	}
	require.Equal(t, float64(st.FileCalls), downloads, "downloads counted = downloads NHN saw")
	v, _ = sample(fams, "nhncert_upstream_requests_total", "call", "download", "outcome", "not_found")
	require.Equal(t, 1.0, v, "missing.example: NHN's 52000")
	v, _ = sample(fams, "nhncert_upstream_requests_total", "call", "list", "outcome", "ok")
	require.Equal(t, float64(st.ListCalls), v)
	v, _ = sample(fams, "nhncert_refresh_runs_total", "result", "ok")
	require.GreaterOrEqual(t, v, 1.0)
	v, _ = sample(fams, "nhncert_refresh_last_success_timestamp_seconds")
	require.InDelta(t, float64(time.Now().Unix()), v, 60)
	v, _ = sample(fams, "nhncert_token_expiry_timestamp_seconds")
	require.Greater(t, v, float64(time.Now().Unix()), "the token held expires later")
	v, _ = sample(fams, "nhncert_cached_certificates", "where", "storage")
	require.Equal(t, float64(len(h.cacheKeys())), v)
	v, _ = sample(fams, "nhncert_build_info", "version", Version)
	require.Equal(t, 1.0, v)
}

// certID is the certificateId NHN's list gives name, as the label shows it.
func certID(t *testing.T, h *harness, name string) string {
	t.Helper()
	info := h.b.catalog.lookup(mustSession(h).cfg.Generation, name)
	require.NotNil(t, info, "%s listed", name)
	id, ok := info.CertificateID()
	require.True(t, ok)
	return fmt.Sprint(id)
}

// Names are label values as they are: quotes, spaces, braces, '=' and
// ',' and non-ASCII letters come back through Prometheus's parser exactly,
// never cut (a 512-byte name included).
func TestMetricsEscapeHostileNames(t *testing.T) {
	h := configuredHarness(t, nil)
	names := []string{
		`q"uote.example`, "sp ace%25.example", `br{ace}s.example`, `eq=ual,comma.example`,
		"한글.example", "*.wild.example", strings.Repeat("l", 500) + ".example",
	}
	for _, n := range names {
		h.putChain(n, emulator.ChainOptions{CommonName: "x.example"}, emulator.FileOptions{})
	}
	resp, err := h.request(logical.ListOperation, "certs/", map[string]any{"status": "all"})
	require.NoError(t, err)
	require.Len(t, resp.Data["keys"], len(names))
	fams, text := scrape(t, h)
	got := map[string]bool{}
	for _, m := range fams["nhncert_certificate_expiry_timestamp_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "name" {
				got[l.GetValue()] = true
			}
		}
	}
	for _, n := range names {
		require.True(t, got[n], "%q is not a label value as it is:\n%s", n, text)
	}
}

// Each failure NHN can show is counted under its fixed outcome, once per
// request sent (retries included), so that a rule on
// nhncert_upstream_requests_total{outcome!="ok"} sees what NHN did.
func TestMetricsUpstreamOutcomes(t *testing.T) {
	for _, tc := range []struct {
		fault   emulator.Fault
		outcome string
	}{
		{emulator.Fault{Mode: emulator.FaultDown, Target: emulator.TargetFiles}, "http_5xx"},
		{emulator.Fault{Mode: emulator.FaultTooMany, Target: emulator.TargetFiles}, "http_4xx"},
		{emulator.Fault{Mode: emulator.FaultReset, Target: emulator.TargetFiles}, "transport"},
		{emulator.Fault{Mode: emulator.FaultSlow, Target: emulator.TargetFiles, Delay: 30 * time.Second}, "timeout"},
		{emulator.Fault{Mode: emulator.FaultResult, Target: emulator.TargetFiles, ResultCode: 52003}, "nhn_error"},
		{emulator.Fault{Mode: emulator.FaultResult, Target: emulator.TargetFiles, ResultCode: 52000}, "not_found"},
	} {
		t.Run(tc.outcome, func(t *testing.T) {
			h := configuredHarness(t, map[string]any{"request_timeout": "1s"})
			h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
			h.emu.SetFault(tc.fault)
			_, err := h.request(logical.ReadOperation, "certs/example.com", nil)
			require.Error(t, err)
			fams, text := scrape(t, h)
			sent := float64(h.emu.Stats().FileCalls)
			require.Positive(t, sent)
			v, _ := sample(fams, "nhncert_upstream_requests_total", "call", "download", "outcome", tc.outcome)
			if tc.outcome == "transport" {
				// A connection reset on a reused connection: Go's
				// transport sends an idempotent GET once more by itself,
				// within the engine's one attempt.
				require.GreaterOrEqual(t, v, sent/2, "%s:\n%s", tc.outcome, text)
				require.LessOrEqual(t, v, sent)
				sent = v
			}
			require.Equal(t, sent, v, "every download NHN saw, as %s:\n%s", tc.outcome, text)
			v, _ = sample(fams, "nhncert_upstream_requests_total", "call", "download", "outcome", "ok")
			require.Zero(t, v)
			v, _ = sample(fams, "nhncert_upstream_request_duration_seconds", "call", "download")
			require.Equal(t, sent, v, "one duration per request")
			v, _ = sample(fams, "nhncert_reads_total", "result", "error")
			require.Equal(t, 1.0, v)
		})
	}
}

// A stale read (NHN down, a copy cached) counts as stale.
func TestMetricsStaleRead(t *testing.T) {
	h := configuredHarness(t, nil)
	h.cached("example.com")
	expireCache(h, "example.com")
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	require.NotEmpty(t, h.read("example.com", nil).Warnings)
	fams, _ := scrape(t, h)
	for result, want := range map[string]float64{"miss": 1, "stale": 1, "hit": 0, "error": 0} {
		v, _ := sample(fams, "nhncert_reads_total", "result", result)
		require.Equal(t, want, v, result)
	}
}

// Two mounts of the plugin in one process (Vault multiplexes them) each
// show their own certificates and counts only.
func TestMetricsPerMount(t *testing.T) {
	h1, h2 := newHarness(t), newHarness(t)
	h1.configure(nil)
	h2.configure(nil)
	h1.putChain("one.example", emulator.ChainOptions{}, emulator.FileOptions{})
	h2.putChain("two.example", emulator.ChainOptions{}, emulator.FileOptions{})
	for i := 0; i < 3; i++ {
		h1.read("one.example", nil)
	}
	h2.read("two.example", nil)
	for _, h := range []*harness{h1, h2} {
		_, err := h.request(logical.ListOperation, "certs/", nil)
		require.NoError(t, err)
	}
	f1, t1 := scrape(t, h1)
	f2, t2 := scrape(t, h2)
	v, _ := sample(f1, "nhncert_reads_total", "result", "hit")
	require.Equal(t, 2.0, v)
	v, _ = sample(f2, "nhncert_reads_total", "result", "hit")
	require.Zero(t, v, "mount 2 counts mount 1's reads")
	require.Contains(t, t1, `name="one.example"`)
	require.NotContains(t, t1, "two.example")
	require.Contains(t, t2, `name="two.example"`)
	require.NotContains(t, t2, "one.example")
}

// Nothing secret in a scrape: no credential, app key, bearer token or key
// material, whatever happened before it.
func TestMetricsNoSecret(t *testing.T) {
	h := configuredHarness(t, nil)
	ch := h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	_, _ = h.request(logical.ReadOperation, "certs/example.com", map[string]any{"refresh": true})
	_, text := scrape(t, h)
	h.requireNoSecrets("the scrape", text)
	require.NotContains(t, text, testAppKey)
	require.NotContains(t, text, testKeyID)
	fixture.RequireNoKeyMaterial(t, text, ch.KeyPEM)
}

// Unconfigured, a scrape still answers (the build, the counters) and names
// no certificate.
func TestMetricsUnconfigured(t *testing.T) {
	h := newHarness(t)
	fams, _ := scrape(t, h)
	require.Contains(t, fams, "nhncert_build_info")
	require.NotContains(t, fams, "nhncert_certificate_expiry_timestamp_seconds")
	require.NotContains(t, fams, "nhncert_refresh_last_success_timestamp_seconds")
}

// The certificate families describe the last list, whatever its filter
// (CONTRACT, metrics: "a certificate a later list no longer shows, where
// its filter covers it, is gone"): after NHN deletes a certificate, the
// default list (unexpired) drops it from the expiry family and from the
// count, and keeps the expired certificate the earlier complete list
// showed, which its filter does not cover.
func TestMetricsForgetCertificatesNHNDeleted(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"refresh_interval": "0"})
	h.putChain("a.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("b.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.putChain("old.example.com", emulator.ChainOptions{NotBefore: time.Now().Add(-100 * 24 * time.Hour), NotAfter: time.Now().Add(-10 * 24 * time.Hour)}, emulator.FileOptions{})
	_, err := h.request(logical.ListOperation, "certs/", map[string]any{"status": "all"})
	require.NoError(t, err)
	fams, _ := scrape(t, h)
	v, _ := sample(fams, "nhncert_certificates", "status", "unexpired")
	require.Equal(t, 2.0, v)

	h.emu.Remove("b.example.com")
	_, err = h.request(logical.ListOperation, "certs/", nil)
	require.NoError(t, err)
	fams, text := scrape(t, h)
	require.NotContains(t, text, `name="b.example.com"`, "a certificate NHN deleted stays in the expiry family")
	require.Contains(t, text, `name="a.example.com"`)
	require.Contains(t, text, `name="old.example.com"`, "the expired certificate, outside the unexpired list's filter, stays")
	v, _ = sample(fams, "nhncert_certificates", "status", "unexpired")
	require.Equal(t, 1.0, v, "nhncert_certificates{status=unexpired} after NHN deleted one of two")
	v, _ = sample(fams, "nhncert_certificates", "status", "expired")
	require.Equal(t, 1.0, v, "nhncert_certificates{status=expired}")
}
