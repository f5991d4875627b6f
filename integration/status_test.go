package integration

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRefreshStatus: through a real Vault, nhncert/status reports the
// background refresh after a run (what it listed, when, when it runs
// next, what is cached, when the token expires) to a token that may read
// only the status, and holds no secret.
func TestRefreshStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.vault
	mustCLI(t, v, "write", mount+"/config", "refresh_interval=1s")
	_, err := v.client.Logical().Read(mount + "/certs/example.com")
	require.NoError(t, err)

	token := tokenWithPolicy(t, v, "nhncert-status-only", `path "`+mount+`/status" {
  capabilities = ["read"]
}
`, "-no-default-policy")
	var d map[string]any
	require.Eventually(t, func() bool {
		r := mustRaw(t, v, token, "GET", mount+"/status", nil, nil)
		if r.status != 200 {
			t.Logf("status: %s", r)
			return false
		}
		d = r.data()
		n, _ := d["last_run_listed"].(float64)
		return d["state"] == "ok" && n > 0
	}, time.Minute, 200*time.Millisecond, "a run finished and listed NHN")

	assert.EqualValues(t, e.emu.stats(t).ListCalls > 0, true, "NHN was listed")
	assert.Equal(t, true, d["refresher_running"])
	assert.Equal(t, true, d["configured"])
	assert.Equal(t, "", d["last_run_error"])
	assert.NotEmpty(t, d["config_generation"])
	for _, f := range []string{"last_run_started", "last_run_finished", "next_run_at", "token_expires_at"} {
		s, _ := d[f].(string)
		_, err := time.Parse(time.RFC3339, s)
		assert.NoError(t, err, "%s = %q", f, d[f])
	}
	for _, f := range []string{"cached_in_memory", "cached_in_storage"} {
		n, _ := d[f].(float64)
		assert.GreaterOrEqual(t, n, 1.0, f)
	}

	// The monitoring check of docs/monitoring.md, as an operator would run it (jq's
	// test done here in Go: the check's inputs are these fields).
	c := v.cli(token, "", "read", "-format=json", mount+"/status")
	require.Equal(t, 0, c.code, "%s", c)
	assertNoSecret(t, e, "vault read status", c.stdout)
	assert.NotContains(t, c.stdout, "PRIVATE KEY")
	var out struct {
		Data struct {
			State           string `json:"state"`
			LastRunStarted  string `json:"last_run_started"`
			RefreshInterval int    `json:"refresh_interval"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(c.stdout), &out))
	started, err := time.Parse(time.RFC3339, out.Data.LastRunStarted)
	require.NoError(t, err)
	assert.Equal(t, "ok", out.Data.State)
	assert.Less(t, time.Since(started), time.Duration(3*out.Data.RefreshInterval)*time.Second+5*time.Second)

	// The status token reads nothing else.
	r := mustRaw(t, v, token, "GET", mount+"/certs/example.com", nil, nil)
	assert.Equal(t, 403, r.status, "%s", r)
}
