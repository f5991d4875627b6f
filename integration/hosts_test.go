package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// TestHostsInVault reads hosts/<hostname> through a real Vault against the
// emulator's demo set, where www.example.com is covered by three
// certificates ("*.example.com", "example.com (new)", "웹 서버 인증서"):
// a policy per host grants that host and nothing else, a malformed host is
// a 400 naming the rule (not "unsupported path"), format=pkcs12_bundle
// works through the hosts path, and a Vault Agent whose template names the
// host (static_secret_render_interval 10m) renders a newer certificate
// uploaded under a new name within agentRotationBound, with nothing in its
// configuration changed.
func TestHostsInVault(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.vault
	ctx := ctxT(t)
	require.NoError(t, e.configure(mount, "refresh_interval=5s"))
	const host = "www.example.com"

	// A policy per host.
	token := tokenWithPolicy(t, v, "host-www", `path "`+mount+`/hosts/`+host+`" { capabilities = ["read", "update"] }`+"\n")
	r := mustRaw(t, v, token, "GET", mount+"/hosts/"+host, nil, nil)
	require.Equal(t, 200, r.status, "%s", r)
	first := str(t, r.data(), "certificate_name")
	require.Contains(t, []string{"*.example.com", "example.com (new)", "웹 서버 인증서"}, first)
	require.Regexp(t, `"ttl":\d+[,}]`, string(r.body), "ttl is a JSON integer")
	require.Regexp(t, `"certificate_id":\d+[,}]`, string(r.body))
	for _, p := range []string{"/hosts/api.example.com", "/hosts/WWW.example.com", "/certs/" + url.PathEscape(first)} {
		r := mustRaw(t, v, token, "GET", mount+p, nil, nil)
		assert.Equal(t, 403, r.status, "%s with the policy of %s: %s", p, host, r)
	}

	// Malformed hosts: 400 naming the rule, even with '/'.
	for h, rule := range map[string]string{"a/b": `"/" is not allowed`, "10.0.0.1": "all digits", "*.example.com": `"*" is not allowed`} {
		r := mustRaw(t, v, v.rootToken, "GET", mount+"/hosts/"+h, nil, nil)
		assert.Equal(t, 400, r.status, "%s: %s", h, r)
		assert.Contains(t, r.says(), rule, h)
	}
	// No certificate: 404 that says why. (expired.example.com is not one:
	// the demo's *.example.com covers it.)
	r = mustRaw(t, v, v.rootToken, "GET", mount+"/hosts/www.example.org", nil, nil)
	assert.Equal(t, 404, r.status, "%s", r)
	assert.Contains(t, r.says(), "0 candidate(s) considered")
	r = mustRaw(t, v, v.rootToken, "GET", mount+"/hosts/expired.example.com", nil, nil)
	assert.Equal(t, "*.example.com", str(t, r.data(), "certificate_name"), "%s", r)

	// A keystore through the hosts path.
	r = mustRaw(t, v, token, "GET", mount+"/hosts/"+host, url.Values{"format": {"pkcs12_bundle"}}, nil)
	require.Equal(t, 200, r.status, "%s", r)
	raw, err := base64.StdEncoding.DecodeString(str(t, r.data(), "certificate"))
	require.NoError(t, err)
	_, p12Leaf, _, err := pkcs12.DecodeChain(raw, "changeit")
	require.NoError(t, err)
	require.NoError(t, p12Leaf.VerifyHostname(host))
	require.Equal(t, first, str(t, r.data(), "certificate_name"))

	// Vault Agent by host.
	dir := t.TempDir()
	chainPEM, keyPEM := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "key.pem")
	agent, _ := startAgent(t, e, dir, agentRun{
		token:          token,
		renderInterval: "10m",
		debug:          true,
		templates: []agentTemplate{
			{text: fieldTemplate(mount+"/hosts/"+host, "full_chain"), dest: chainPEM, perms: "0644"},
			{text: fieldTemplate(mount+"/hosts/"+host, "private_key"), dest: keyPEM, perms: "0600"},
		},
		logName: "agent-hosts.log",
	})
	rendered := func() (*x509.Certificate, error) {
		c, err := os.ReadFile(chainPEM)
		if err != nil {
			return nil, err
		}
		k, err := os.ReadFile(keyPEM)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			return nil, fmt.Errorf("fullchain.pem and key.pem do not match (yet): %w", err)
		}
		return x509.ParseCertificate(pair.Certificate[0])
	}
	waitSerial := func(want string, bound time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		require.NoError(t, poll(bound, "Vault Agent to render serial "+want, agent, func() (bool, error) {
			leaf, err := rendered()
			if err != nil {
				return false, err
			}
			got := serialHex(leaf.SerialNumber)
			return got == want, fmt.Errorf("fullchain.pem has serial %s", got)
		}))
		return time.Since(start)
	}
	certs, err := e.emu.admin.Certs(ctx)
	require.NoError(t, err)
	firstSerial := ""
	for _, c := range certs {
		if c.Name == first {
			firstSerial = c.Serial
		}
	}
	require.NotEmpty(t, firstSerial)
	waitSerial(firstSerial, agentRenderTimeout)

	// Next year's certificate, uploaded under a name no configuration
	// knows.
	added, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: "www.example.com-2027", DNSNames: []string{host}, ExpiresInDays: 400})
	require.NoError(t, err)
	took := waitSerial(added.Serial, 3*agentRotationBound)
	t.Logf("Vault Agent (static_secret_render_interval=10m, refresh_interval=5s) rendered the certificate uploaded under a new name %s after the upload (bound %s)",
		took.Round(10*time.Millisecond), agentRotationBound)
	assert.LessOrEqual(t, took, agentRotationBound, "the switch reached Agent's file too late")

	r = mustRaw(t, v, token, "GET", mount+"/hosts/"+host, nil, nil)
	require.Equal(t, 200, r.status, "%s", r)
	assert.Equal(t, "www.example.com-2027", str(t, r.data(), "certificate_name"))

	// The list by host names every certificate whose domains cover it.
	lr := mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"host": {host}}, nil)
	require.Equal(t, 200, lr.status, "%s", lr)
	keys, _ := listKeys(t, lr)
	assert.Equal(t, "*.example.com,example.com (new),www.example.com-2027,웹 서버 인증서", strings.Join(keys, ","))
	assert.False(t, agent.exited(), "Vault Agent exited: %v", agent.waitErr)
}
