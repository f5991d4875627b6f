package integration

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// agentRenderTimeout bounds how long Vault Agent may take to render, and
// to re-render after a rotation.
const agentRenderTimeout = 60 * time.Second

// TestAgent runs a real Vault Agent (token_file auto-auth, two templates
// with static_secret_render_interval 2s) against a Vault whose nhncert
// mount has cache_ttl=1s: it renders cert.pem and key.pem that match,
// re-reads without rewriting an unchanged file, and after the certificate
// is rotated in NHN renders the new certificate and key.
func TestAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMountConfig("cache_ttl=1s"))
	ctx := ctxT(t)

	// A token that may read only the one certificate.
	agent := startTLSAgent(t, e, "example.com", withCertField("certificate"), withRenderInterval("2s"))
	certPEM, keyPEM := agent.certFile, agent.keyFile
	firstSerial := emulatorSerial(t, e, "example.com")

	took := agent.waitSerial(t, firstSerial, agentRenderTimeout)
	t.Logf("Vault Agent rendered cert.pem and key.pem (serial %s) in %s", firstSerial, took.Round(time.Millisecond))
	if st, err := os.Stat(keyPEM); assert.NoError(t, err) {
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "key.pem mode")
	}

	// Agent keeps reading (each read reaches NHN: cache_ttl is 1s) but
	// does not rewrite files whose content did not change.
	st0, err := os.Stat(certPEM)
	require.NoError(t, err)
	base := e.emu.stats(t).FileCallsByName["example.com"]
	err = poll(agentRenderTimeout, "two more agent reads to reach NHN", agent.proc, func() (bool, error) {
		n := e.emu.stats(t).FileCallsByName["example.com"] - base
		return n >= 2, fmt.Errorf("%d downloads since the first render", n)
	})
	require.NoError(t, err)
	if st1, err := os.Stat(certPEM); assert.NoError(t, err, "cert.pem") {
		assert.WithinDuration(t, st0.ModTime(), st1.ModTime(), 0, "cert.pem was rewritten although the certificate did not change (mtime %v -> %v)", st0.ModTime(), st1.ModTime())
	}

	rotated, err := e.emu.admin.Rotate(ctx, "example.com")
	require.NoError(t, err)
	require.NotEqual(t, firstSerial, rotated.Serial, "the rotation kept the serial")
	took = agent.waitSerial(t, rotated.Serial, agentRenderTimeout)
	t.Logf("Vault Agent rendered the rotated certificate (serial %s) %s after the rotation", rotated.Serial, took.Round(time.Millisecond))
	if !assert.False(t, agent.exited(), "Vault Agent exited") {
		t.Logf("Vault Agent exited: %v", agent.waitErr)
	}
	if err := agent.stop(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Logf("vault agent exit after SIGTERM: %v", err)
	}
}
