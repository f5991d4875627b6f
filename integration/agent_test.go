package integration

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	e := newEnv(t)
	v := e.vault
	ctx := ctxT(t)
	require.NoError(t, e.configure(mount, "cache_ttl=1s"))
	dir := t.TempDir()

	// A token that may read only the one certificate.
	token := tokenWithPolicy(t, v, "agent-example", `path "`+mount+`/certs/example.com" { capabilities = ["read"] }`+"\n")
	certPEM, keyPEM := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	agent, _ := startAgent(t, e, dir, agentRun{
		token:          token,
		renderInterval: "2s",
		templates: []agentTemplate{
			{text: fieldTemplate(mount+"/certs/example.com", "certificate"), dest: certPEM, perms: "0644"},
			{text: fieldTemplate(mount+"/certs/example.com", "private_key"), dest: keyPEM, perms: "0600"},
		},
		logName: "agent.log",
	})

	certs, err := e.emu.admin.Certs(ctx)
	require.NoError(t, err)
	var firstSerial string
	for _, c := range certs {
		if c.Name == "example.com" {
			firstSerial = c.Serial
		}
	}

	// rendered returns the serial of cert.pem once cert.pem and key.pem
	// are both there and match.
	rendered := func() (string, error) {
		c, err := os.ReadFile(certPEM)
		if err != nil {
			return "", err
		}
		k, err := os.ReadFile(keyPEM)
		if err != nil {
			return "", err
		}
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			return "", fmt.Errorf("cert.pem and key.pem do not match (yet): %w", err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return "", err
		}
		return serialHex(leaf.SerialNumber), nil
	}
	waitSerial := func(want string) time.Duration {
		t.Helper()
		start := time.Now()
		err := poll(agentRenderTimeout, "Vault Agent to render serial "+want, agent, func() (bool, error) {
			got, err := rendered()
			if err != nil {
				return false, err
			}
			return got == want, fmt.Errorf("cert.pem has serial %s", got)
		})
		require.NoError(t, err)
		return time.Since(start)
	}

	took := waitSerial(firstSerial)
	t.Logf("Vault Agent rendered cert.pem and key.pem (serial %s) in %s", firstSerial, took.Round(time.Millisecond))
	if st, err := os.Stat(keyPEM); assert.NoError(t, err) {
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "key.pem mode")
	}

	// Agent keeps reading (each read reaches NHN: cache_ttl is 1s) but
	// does not rewrite files whose content did not change.
	st0, err := os.Stat(certPEM)
	require.NoError(t, err)
	base := e.emu.stats(t).FileCallsByName["example.com"]
	err = poll(agentRenderTimeout, "two more agent reads to reach NHN", agent, func() (bool, error) {
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
	took = waitSerial(rotated.Serial)
	t.Logf("Vault Agent rendered the rotated certificate (serial %s) %s after the rotation", rotated.Serial, took.Round(time.Millisecond))
	if !assert.False(t, agent.exited(), "Vault Agent exited") {
		t.Logf("Vault Agent exited: %v", agent.waitErr)
	}
	if err := agent.stop(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Logf("vault agent exit after SIGTERM: %v", err)
	}
}
