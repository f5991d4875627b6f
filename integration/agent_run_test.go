package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// agentTemplate is one template of a Vault Agent: its text and the file it
// renders.
type agentTemplate struct {
	text, dest, perms string
}

// agentConfig is the Vault Agent an agentOption describes: token_file
// auto-auth with a token that may read (capabilities) one certificate,
// the certificate's field certField rendered to a PEM file and its
// private_key to key.pem, more templates, Agent's
// static_secret_render_interval, and its log in the env's directory under
// logName.
type agentConfig struct {
	capabilities   []string
	certField      string
	renderInterval string
	debug          bool
	extra          []agentTemplate
	logName        string
}

// agentOption is an option of startTLSAgent.
type agentOption func(*agentConfig)

// withRenderInterval sets static_secret_render_interval (default 10m:
// Agent then reads again only by the ttl the engine gives).
func withRenderInterval(d string) agentOption {
	return func(c *agentConfig) { c.renderInterval = d }
}

// withCertField renders field (default full_chain) as the certificate file.
func withCertField(field string) agentOption {
	return func(c *agentConfig) { c.certField = field }
}

// withAgentCapabilities sets the token's capabilities on the certificate
// (default read).
func withAgentCapabilities(caps ...string) agentOption {
	return func(c *agentConfig) { c.capabilities = caps }
}

// withAgentDebug runs Agent with log_level debug.
func withAgentDebug() agentOption {
	return func(c *agentConfig) { c.debug = true }
}

// withAgentTemplate adds a template to the two of the pair.
func withAgentTemplate(tpl agentTemplate) agentOption {
	return func(c *agentConfig) { c.extra = append(c.extra, tpl) }
}

// withAgentLog names Agent's log file (default agent.log).
func withAgentLog(name string) agentOption {
	return func(c *agentConfig) { c.logName = name }
}

// tlsAgent is a running Vault Agent that renders one certificate and its
// key as a server would use them.
type tlsAgent struct {
	*proc
	log      string // its log's path
	certFile string // certField of the certificate, PEM
	keyFile  string // private_key, PEM, mode 0600
}

// startTLSAgent starts a Vault Agent (configured by opts) in a directory
// of its own that renders the certificate name of the env's mount, with a
// token whose policy grants that one path; it is stopped when the test
// ends, and its log's tail printed if the test failed.
func startTLSAgent(t *testing.T, e *env, name string, opts ...agentOption) *tlsAgent {
	t.Helper()
	c := agentConfig{capabilities: []string{"read"}, certField: "full_chain", renderInterval: "10m", logName: "agent.log"}
	for _, o := range opts {
		o(&c)
	}
	dir := t.TempDir()
	path := mount + "/certs/" + name
	caps := make([]string, len(c.capabilities))
	for i, cp := range c.capabilities {
		caps[i] = strconv.Quote(cp)
	}
	policy := fmt.Sprintf("path %q { capabilities = [%s] }\n", path, strings.Join(caps, ", "))
	token := tokenWithPolicy(t, e.vault, strings.TrimSuffix(c.logName, ".log"), policy)
	a := &tlsAgent{certFile: filepath.Join(dir, c.certField+".pem"), keyFile: filepath.Join(dir, "key.pem")}
	tpls := append([]agentTemplate{
		{text: fieldTemplate(path, c.certField), dest: a.certFile, perms: "0644"},
		{text: fieldTemplate(path, "private_key"), dest: a.keyFile, perms: "0600"},
	}, c.extra...)
	a.proc, a.log = startAgent(t, e, dir, agentRun{token: token, renderInterval: c.renderInterval, debug: c.debug, templates: tpls, logName: c.logName})
	return a
}

// rendered returns the leaf serial of the certificate file and how many
// certificates it holds, once it and key.pem are both there and match.
func (a *tlsAgent) rendered() (serial string, certs int, err error) {
	c, err := os.ReadFile(a.certFile)
	if err != nil {
		return "", 0, err
	}
	k, err := os.ReadFile(a.keyFile)
	if err != nil {
		return "", 0, err
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		return "", 0, fmt.Errorf("%s and key.pem do not match (yet): %w", filepath.Base(a.certFile), err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return "", 0, err
	}
	return serialHex(leaf.SerialNumber), len(pair.Certificate), nil
}

// waitSerial waits, at most bound, until the pair rendered has serial want
// and every check (more files, a chain length) passes; it returns how long
// that took.
func (a *tlsAgent) waitSerial(t *testing.T, want string, bound time.Duration, checks ...func(serial string, certs int) error) time.Duration {
	t.Helper()
	start := time.Now()
	err := poll(bound, "Vault Agent to render serial "+want, a.proc, func() (bool, error) {
		got, n, err := a.rendered()
		if err != nil {
			return false, err
		}
		for _, check := range checks {
			if err := check(got, n); err != nil {
				return false, err
			}
		}
		return got == want, fmt.Errorf("%s has serial %s", filepath.Base(a.certFile), got)
	})
	require.NoError(t, err)
	return time.Since(start)
}

// agentRun is a Vault Agent to start: token_file auto-auth with token, the
// given static_secret_render_interval and templates, its log in the env's
// directory under logName.
type agentRun struct {
	token          string
	renderInterval string
	debug          bool
	templates      []agentTemplate
	logName        string
}

// startAgent writes the Agent's token, templates and config into dir and
// starts it; it is stopped when the test ends, and its log's tail is
// printed if the test failed. It returns the process and its log's path.
func startAgent(t *testing.T, e *env, dir string, a agentRun) (*proc, string) {
	t.Helper()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(a.token+"\n"), 0o600))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "pid_file = %q\n", filepath.Join(dir, "agent.pid"))
	if a.debug {
		cfg.WriteString("log_level = \"debug\"\n")
	}
	fmt.Fprintf(&cfg, `
vault {
  address = %q
}

auto_auth {
  method "token_file" {
    config {
      token_file_path = %q
    }
  }
}

template_config {
  static_secret_render_interval = %q
  exit_on_retry_failure         = true
}
`, e.vault.addr, tokenFile, a.renderInterval)
	for i, tpl := range a.templates {
		src := filepath.Join(dir, fmt.Sprintf("template-%d.tpl", i))
		require.NoError(t, os.WriteFile(src, []byte(tpl.text), 0o600))
		fmt.Fprintf(&cfg, `
template {
  source      = %q
  destination = %q
  perms       = %q
}
`, src, tpl.dest, tpl.perms)
	}
	agentHCL := filepath.Join(dir, "agent.hcl")
	require.NoError(t, os.WriteFile(agentHCL, []byte(cfg.String()), 0o600))
	agentLog := filepath.Join(e.dir, a.logName)
	agent, err := startProc("vault agent", agentLog, baseEnv(e.vault.home), bins.vault, "agent", "-config="+agentHCL)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- %s (tail) ----\n%s", agentLog, tail(agentLog, 80))
		}
		_ = agent.stop()
	})
	return agent, agentLog
}

// fieldTemplate renders one field of a secret.
func fieldTemplate(path, field string) string {
	return fmt.Sprintf("{{ with secret %q }}{{ .Data.%s }}{{ end }}\n", path, field)
}
