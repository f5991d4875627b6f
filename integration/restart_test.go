package integration

import (
	"bytes"
	"context"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRestart runs a non-dev Vault (HCL config, file storage, init and
// unseal), reads certificates, stops Vault and the emulator, starts Vault
// again and unseals it: the certificates are served from the cache in
// Vault's storage, with the same serials, while NHN is unreachable. The
// storage holds neither the secret key nor the private keys in clear.
func TestRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withVaultMode(realVault))
	v := e.vault
	names := []string{"example.com", "*.example.com"}
	serials := map[string]string{}
	keys := map[string]string{}
	for _, n := range names {
		d := readCert(t, v, n, nil).Data
		serials[n], keys[n] = str(t, d, "serial_number"), str(t, d, "private_key")
	}
	require.Equal(t, int64(1), e.emu.stats(t).FileCallsByName["example.com"], "example.com downloads, want 1")

	if err := v.stop(); err != nil {
		t.Logf("vault server exit after SIGTERM: %v", err)
	}
	require.True(t, v.proc.exited(), "Vault is still running after stop")
	if err := e.emu.proc.stop(); err != nil {
		t.Logf("emulator exit after SIGTERM: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.Error(t, e.emu.admin.Health(ctx), "the emulator still answers after it was stopped")

	// Nothing readable in the file storage.
	data := filepath.Join(v.dir, "data")
	var files int
	err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		// assert.False, not NotContains: the message must not show the secret.
		assert.False(t, bytes.Contains(b, []byte(e.emu.secret)), "%s holds the Secret Access Key in clear", p)
		for n, k := range keys {
			blk, _ := pem.Decode([]byte(k))
			inClear := blk != nil && (bytes.Contains(b, blk.Bytes[len(blk.Bytes)/2:len(blk.Bytes)/2+24]) || bytes.Contains(b, []byte(k[40:120])))
			assert.False(t, inClear, "%s holds the private key of %s in clear", p, n)
		}
		return nil
	})
	require.NoError(t, err, "walking the file storage %s", data)
	require.NotZero(t, files, "walking the file storage %s: no files", data)

	require.NoError(t, v.start(), "restarting Vault")
	h, err := v.client.Sys().Health()
	require.NoError(t, err, "restarted Vault: health")
	require.True(t, h.Initialized, "restarted Vault: health %+v; want initialized and sealed", h)
	require.True(t, h.Sealed, "restarted Vault: health %+v; want initialized and sealed", h)
	require.NoError(t, v.unseal())

	for _, n := range names {
		s := readCert(t, v, n, nil)
		assert.Equal(t, serials[n], str(t, s.Data, "serial_number"), "after the restart, %s: serial", n)
		assert.Empty(t, s.Warnings, "after the restart, %s (fresh in the cache): warnings", n)
		checkPEMRead(t, s, n, map[string]string{"example.com": "rsa", "*.example.com": "ec"}[n], 1)
	}
	c := v.cli(v.rootToken, "", "read", "-field=serial_number", mount+"/certs/example.com")
	assert.Equal(t, 0, c.code, "vault read after the restart: %s", c)
	assert.Equal(t, serials["example.com"], strings.TrimSpace(c.stdout), "vault read after the restart: %s", c)

	// With NHN unreachable, a refresh serves the stored copy with a
	// warning, and what needs NHN fails without leaking credentials.
	s := readCert(t, v, "example.com", map[string][]string{"refresh": {"true"}})
	assert.Equal(t, serials["example.com"], s.Data["serial_number"], "refresh=true with NHN unreachable: want the stored copy")
	assert.NotEmpty(t, s.Warnings, "refresh=true with NHN unreachable: want a warning")
	assertNoSecret(t, e, "the warning", strings.Join(s.Warnings, " "))
	for _, p := range []string{mount + "/certs", mount + "/certs/api.example.com"} {
		method := "GET"
		if p == mount+"/certs" {
			method = "LIST"
		}
		r := mustRaw(t, v, v.rootToken, method, p, nil, nil)
		assert.GreaterOrEqual(t, r.status, 500, "%s %s with NHN unreachable: %s; want a 5xx with a message", method, p, r)
		assert.NotEmpty(t, r.errors(), "%s %s with NHN unreachable: %s; want a 5xx with a message", method, p, r)
		assertNoSecret(t, e, "the error", string(r.body))
	}
	checkMountVersion(t, e)
	assert.False(t, strings.Contains(tail(v.logPath, 1000000), e.emu.secret), "Vault's log holds the Secret Access Key")
}
