package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// A real Prometheus scrapes a real Vault through a token whose policy reads
// only nhncert/metrics, loads the rules file the repository ships, and
// fires the expiry alert for a certificate that expires in 10 days; the
// rules' own unit tests pass under promtool.

// rulesFile is the rules file the repository ships (rulesDoc shows it).
const rulesFile = "../deploy/prometheus/nhncert-rules.yml"

// rulesDoc is the docs page that shows the rules and the scrape config.
const rulesDoc = "../docs/monitoring.md"

// prometheusDir returns the directory with the prometheus and promtool
// binaries (scripts/prometheus.sh, which `make integration` runs); the test
// is skipped, with the reason, when there is none, and fails under CI.
func prometheusDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("NHNCERT_PROMETHEUS_DIR")
	if dir == "" {
		out, err := exec.Command("../scripts/prometheus.sh").Output()
		if err != nil {
			reason := fmt.Sprintf("SKIPPED: no Prometheus (NHNCERT_PROMETHEUS_DIR unset and scripts/prometheus.sh failed: %v)", err)
			if os.Getenv("CI") != "" {
				t.Fatal(reason + "; CI may not skip the Prometheus test")
			}
			t.Skip(reason)
		}
		dir = strings.TrimSpace(string(out))
	}
	for _, b := range []string{"prometheus", "promtool"} {
		_, err := os.Stat(filepath.Join(dir, b))
		require.NoError(t, err, "NHNCERT_PROMETHEUS_DIR=%s", dir)
	}
	return dir
}

func TestPrometheusRulesUnitTests(t *testing.T) {
	dir := prometheusDir(t)
	cmd := exec.Command(filepath.Join(dir, "promtool"), "test", "rules", "nhncert-rules.test.yml")
	cmd.Dir = "../deploy/prometheus"
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool test rules:\n%s", out)
	require.Contains(t, string(out), "SUCCESS")
	// The monitoring page shows the rules as they are in the file.
	rules, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	doc, err := os.ReadFile(rulesDoc)
	require.NoError(t, err)
	require.Contains(t, string(doc), "```yaml\n"+string(rules)+"```\n", "the rules shown in %s differ from %s", rulesDoc, rulesFile)
}

func TestPrometheusScrapesAndAlerts(t *testing.T) {
	dir := prometheusDir(t)
	e := newEnv(t)
	v := e.vault
	mustCLI(t, v, "write", mount+"/config", "refresh_interval=2s")
	ctx := ctxT(t)
	_, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: "soon.example", ExpiresInDays: 10})
	require.NoError(t, err)

	token := tokenWithPolicy(t, v, "metrics-only", `path "nhncert/metrics" { capabilities = ["read"] }`, "-no-default-policy")
	// The token reads the metrics and nothing else.
	r := mustRaw(t, v, token, http.MethodGet, mount+"/certs/soon.example", nil, nil)
	require.Equal(t, http.StatusForbidden, r.status, "the metrics token reads a certificate")
	req, err := http.NewRequest(http.MethodGet, v.addr+"/v1/"+mount+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, string(body), "nhncert_build_info{")
	assertNoSecret(t, e, "the scrape", string(body))

	work := t.TempDir()
	tokenFile := filepath.Join(work, "vault-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token), 0o600))
	rules, err := filepath.Abs(rulesFile)
	require.NoError(t, err)
	target := strings.TrimPrefix(v.addr, "http://")
	cfg := fmt.Sprintf(prometheusConfig, rules, mount, tokenFile, target)
	cfgFile := filepath.Join(work, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(cfg), 0o600))
	out, err := exec.Command(filepath.Join(dir, "promtool"), "check", "config", cfgFile).CombinedOutput()
	require.NoError(t, err, "promtool check config:\n%s", out)

	port, err := freePort()
	require.NoError(t, err)
	promAddr := fmt.Sprintf("127.0.0.1:%d", port)
	logPath := filepath.Join(work, "prometheus.log")
	p, err := startProc("prometheus", logPath, os.Environ(), filepath.Join(dir, "prometheus"),
		"--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(work, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = p.stop()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", tail(logPath, 40))
		}
	})
	api := "http://" + promAddr + "/api/v1/"

	// up == 1 for the target: Prometheus scraped Vault with the token.
	began := time.Now()
	require.NoError(t, poll(60*time.Second, "Prometheus scraping Vault (up == 1)", p, func() (bool, error) {
		res, err := promQuery(api, `up{job="nhncert"}`)
		return err == nil && len(res) == 1 && res[0].Value[1] == "1", nil
	}))
	t.Logf("up == 1 after %s", time.Since(began).Round(time.Millisecond))

	// The expiry alert fires for the certificate that expires in 10 days,
	// and for no certificate that does not.
	var firing promAlert
	require.NoError(t, poll(90*time.Second, "the expiry alert firing for soon.example", p, func() (bool, error) {
		alerts, err := promAlerts(api)
		if err != nil {
			return false, nil
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "NhncertCertificateExpiringSoon" && a.State == "firing" && a.Labels["name"] == "soon.example" {
				firing = a
				return true, nil
			}
		}
		return false, nil
	}))
	t.Logf("alert after %s: %s %v %q", time.Since(began).Round(time.Millisecond), firing.State, firing.Labels, firing.Annotations["summary"])
	require.Equal(t, "warning", firing.Labels["severity"])
	require.NotEmpty(t, firing.Labels["certificate_id"], "the list's certificateId")
	// Not cached yet: NHN's expirationDate (a day, taken as 00:00 UTC).
	require.Regexp(t, `^Certificate soon\.example expires in 9d `, firing.Annotations["summary"])
	alerts, err := promAlerts(api)
	require.NoError(t, err)
	for _, a := range alerts {
		if a.Labels["alertname"] == "NhncertCertificateExpiringSoon" {
			require.Equal(t, "soon.example", a.Labels["name"], "only soon.example expires within 30 days")
		}
		require.NotEqual(t, "NhncertRefreshFailing", a.Labels["alertname"])
		require.NotEqual(t, "NhncertUpstreamErrors", a.Labels["alertname"])
	}
	// Once the engine holds a copy, the series is the NotAfter of the leaf
	// it serves, to the second.
	notAfter, err := time.Parse(time.RFC3339, str(t, readCert(t, v, "soon.example", nil).Data, "not_after"))
	require.NoError(t, err)
	var last []promSample
	require.NoError(t, poll(30*time.Second, "the expiry series showing the served leaf's NotAfter", p, func() (bool, error) {
		last, err = promQuery(api, `nhncert_certificate_expiry_timestamp_seconds{name="soon.example"}`)
		return err == nil && len(last) == 1 && last[0].Value[1] == fmt.Sprint(notAfter.Unix()), fmt.Errorf("last: %v", last)
	}))
}

// prometheusConfig scrapes Vault the way docs/monitoring.md shows (its values
// filled in): %s rules, %s mount, %s token file, %s Vault address.
const prometheusConfig = `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: nhncert
    metrics_path: /v1/%s/metrics
    scheme: http
    authorization:
      credentials_file: %s
    static_configs:
      - targets: ['%s']
`

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

// promQuery runs an instant query through Prometheus's HTTP API.
func promQuery(api, q string) ([]promSample, error) {
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if err := promGet(api+"query?query="+url.QueryEscape(q), &out); err != nil {
		return nil, err
	}
	return out.Data.Result, nil
}

// promAlerts lists the alerts Prometheus holds (pending and firing).
func promAlerts(api string) ([]promAlert, error) {
	var out struct {
		Data struct {
			Alerts []promAlert `json:"alerts"`
		} `json:"data"`
	}
	err := promGet(api+"alerts", &out)
	return out.Data.Alerts, err
}

func promGet(u string, out any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
