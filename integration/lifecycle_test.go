package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConfigDeleteDuringDownload: a read whose download is in flight (NHN
// answers in 3 s) when `vault delete nhncert/config` returns stores
// nothing. After the delete and the same config written again, the
// status says no certificate is cached (issue 16, point 1: it said
// cached_in_storage 1, a private key the operator believed purged).
func TestConfigDeleteDuringDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMountConfig("refresh_interval=0"))
	v := e.vault
	ctx := ctxT(t)
	require.NoError(t, e.emu.admin.ResetStats(ctx))
	require.NoError(t, e.emu.admin.SetLatency(ctx, 3*time.Second))
	t.Cleanup(func() { _ = e.emu.admin.SetLatency(ctx, 0) })

	read := make(chan rawResponse, 1)
	go func() { read <- mustRaw(t, v, v.rootToken, "GET", mount+"/certs/example.com", nil, nil) }()
	require.NoError(t, poll(20*time.Second, "the download to reach NHN", nil, func() (bool, error) {
		st := e.emu.stats(t)
		return st.FileCalls >= 1, fmt.Errorf("%d file calls", st.FileCalls)
	}))
	mustCLI(t, v, "delete", mount+"/config")
	require.NoError(t, e.emu.admin.SetLatency(ctx, 0))
	require.NoError(t, e.configure(mount, "refresh_interval=0"))
	var r rawResponse
	select {
	case r = <-read:
	case <-time.After(30 * time.Second):
		t.Fatal("the read did not return within 30 s")
	}
	t.Logf("the read in flight during the delete answered %d", r.status)
	// Let the dropped download's time pass: nothing lands later either.
	time.Sleep(4 * time.Second)
	st := mustRaw(t, v, v.rootToken, "GET", mount+"/status", nil, nil)
	require.Equal(t, 200, st.status, "%s", st)
	assert.EqualValues(t, 0, st.data()["cached_in_storage"], "a certificate of the deleted config is in storage")
	assert.EqualValues(t, 0, st.data()["cached_in_memory"], "a certificate of the deleted config is in memory")
}

// TestAgentSeesRenewalBeforeFirstList: a copy downloaded before the
// engine has listed NHN (here: read with the refresh off, then the refresh
// turned on, as after a restart or a config write) is renewed in NHN right
// after Agent first rendered it; Agent (static_secret_render_interval=10m,
// refresh_interval=5s) renders the renewal within agentRotationBound
// (issue 16, point 4: it was not seen within 25 s, only when the copy came
// due, an hour later).
func TestAgentSeesRenewalBeforeFirstList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMountConfig("refresh_interval=0"))
	ctx := ctxT(t)
	const name = "example.com"
	readCert(t, e.vault, name, nil) // cached before any list
	require.NoError(t, e.configure(mount, "refresh_interval=5s"))

	agent := startTLSAgent(t, e, name, withAgentLog("agent-first-list.log"))
	var first string
	require.NoError(t, poll(agentRenderTimeout, "Agent's first render", agent.proc, func() (bool, error) {
		s, _, err := agent.rendered()
		first = s
		return err == nil, err
	}))
	rotated, err := e.emu.admin.Rotate(ctx, name)
	require.NoError(t, err)
	require.NotEqual(t, first, rotated.Serial)
	start := time.Now()
	require.NoError(t, poll(3*agentRotationBound, "Agent to render the renewal", agent.proc, func() (bool, error) {
		s, _, err := agent.rendered()
		return err == nil && s == rotated.Serial, fmt.Errorf("serial %s, want %s (%v)", s, rotated.Serial, err)
	}))
	took := time.Since(start)
	t.Logf("a renewal right after Agent's first render of a copy downloaded before the first list reached the file in %s (bound %s)",
		took.Round(10*time.Millisecond), agentRotationBound)
	assert.LessOrEqual(t, took, agentRotationBound)
}
