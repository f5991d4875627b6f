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
	if st := e.emu.stats(t); st.FileCallsByName["example.com"] != 1 {
		t.Fatalf("example.com was downloaded %d times, want 1", st.FileCallsByName["example.com"])
	}

	if err := v.stop(); err != nil {
		t.Logf("vault server exit after SIGTERM: %v", err)
	}
	if !v.proc.exited() {
		t.Fatal("Vault is still running after stop")
	}
	if err := e.emu.proc.stop(); err != nil {
		t.Logf("emulator exit after SIGTERM: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.emu.admin.Health(ctx); err == nil {
		t.Fatal("the emulator still answers after it was stopped")
	}

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
		if bytes.Contains(b, []byte(e.emu.secret)) {
			t.Errorf("%s holds the Secret Access Key in clear", p)
		}
		for n, k := range keys {
			blk, _ := pem.Decode([]byte(k))
			if blk != nil && (bytes.Contains(b, blk.Bytes[len(blk.Bytes)/2:len(blk.Bytes)/2+24]) || bytes.Contains(b, []byte(k[40:120]))) {
				t.Errorf("%s holds the private key of %s in clear", p, n)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walking the file storage %s: %v (%d files)", data, err, files)
	}

	if err := v.start(); err != nil {
		t.Fatalf("restarting Vault: %v", err)
	}
	h, err := v.client.Sys().Health()
	if err != nil || !h.Initialized || !h.Sealed {
		t.Fatalf("restarted Vault: health %+v, %v; want initialized and sealed", h, err)
	}
	if err := v.unseal(); err != nil {
		t.Fatal(err)
	}

	for _, n := range names {
		s := readCert(t, v, n, nil)
		if got := str(t, s.Data, "serial_number"); got != serials[n] {
			t.Errorf("after the restart, %s: serial %s, want %s", n, got, serials[n])
		}
		if len(s.Warnings) != 0 {
			t.Errorf("after the restart, %s (fresh in the cache): warnings %v", n, s.Warnings)
		}
		checkPEMRead(t, s, n, map[string]string{"example.com": "rsa", "*.example.com": "ec"}[n], 1)
	}
	c := v.cli(v.rootToken, "", "read", "-field=serial_number", mount+"/certs/example.com")
	if c.code != 0 || strings.TrimSpace(c.stdout) != serials["example.com"] {
		t.Errorf("vault read after the restart: %s", c)
	}

	// With NHN unreachable, a refresh serves the stored copy with a
	// warning, and what needs NHN fails without leaking credentials.
	s := readCert(t, v, "example.com", map[string][]string{"refresh": {"true"}})
	if s.Data["serial_number"] != serials["example.com"] || len(s.Warnings) == 0 {
		t.Errorf("refresh=true with NHN unreachable: serial %v warnings %v; want the stored copy and a warning", s.Data["serial_number"], s.Warnings)
	}
	assertNoSecret(t, e, "the warning", strings.Join(s.Warnings, " "))
	for _, p := range []string{mount + "/certs", mount + "/certs/api.example.com"} {
		method := "GET"
		if p == mount+"/certs" {
			method = "LIST"
		}
		r := mustRaw(t, v, v.rootToken, method, p, nil, nil)
		if r.status < 500 || len(r.errors()) == 0 {
			t.Errorf("%s %s with NHN unreachable: %s; want a 5xx with a message", method, p, r)
		}
		assertNoSecret(t, e, "the error", string(r.body))
	}
	checkMountVersion(t, e)
	if strings.Contains(tail(v.logPath, 1000000), e.emu.secret) {
		t.Errorf("Vault's log holds the Secret Access Key")
	}
}
