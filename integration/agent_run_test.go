package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// agentTemplate is one template of a Vault Agent: its text and the file it
// renders.
type agentTemplate struct {
	text, dest, perms string
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
