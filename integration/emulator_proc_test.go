package integration

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/require"
)

// emu is a running cmd/nhncert-emulator.
type emu struct {
	url         string // http://127.0.0.1:port
	admin       *emulator.Admin
	proc        *proc
	appKey      string
	accessKeyID string
	secret      string // the Secret Access Key: must never show up in Vault's answers or logs
}

// startEmulator starts the emulator on a free loopback port with the demo
// set and random credentials, and waits until its health endpoint answers.
func startEmulator(dir string, extraArgs ...string) (*emu, error) {
	e := &emu{
		appKey:      "itest-app-key-" + randomHex(4),
		accessKeyID: "itest-access-key-id-" + randomHex(4),
		secret:      "itest-SECRET-" + randomHex(16),
	}
	addrFile := filepath.Join(dir, "emulator.addr")
	args := append([]string{
		"-listen", "127.0.0.1:0", "-addr-file", addrFile, "-seed", "demo",
		"-app-key", e.appKey, "-access-key-id", e.accessKeyID, "-secret-access-key", e.secret,
	}, extraArgs...)
	p, err := startProc("nhncert-emulator", filepath.Join(dir, "emulator.log"), baseEnv(dir), bins.emulator, args...)
	if err != nil {
		return nil, err
	}
	e.proc = p
	var addr string
	err = poll(startTimeout, "the emulator's -addr-file", p, func() (bool, error) {
		b, err := os.ReadFile(addrFile)
		if err != nil {
			return false, err
		}
		addr = strings.TrimSpace(string(b))
		return addr != "", errors.New("empty address file")
	})
	if err != nil {
		return e, err
	}
	e.url = "http://" + addr
	e.admin = &emulator.Admin{BaseURL: e.url, HTTP: &http.Client{Timeout: 30 * time.Second}}
	err = poll(startTimeout, "the emulator's /_emulator/health", p, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := e.admin.Health(ctx)
		return err == nil, err
	})
	return e, err
}

// stats returns the emulator's counters.
func (e *emu) stats(t *testing.T) emulator.Stats {
	t.Helper()
	st, err := e.admin.Stats(ctxT(t))
	require.NoError(t, err, "emulator stats")
	return st
}

// restartEmulator starts the emulator again on the same address with the
// same credentials (and the demo set, all of it freshly generated) after
// its process was stopped.
func (e *env) restartEmulator() error {
	if !e.emu.proc.exited() {
		return errors.New("the emulator is still running")
	}
	addr := strings.TrimPrefix(e.emu.url, "http://")
	addrFile := filepath.Join(e.dir, "emulator.addr")
	if err := os.Remove(addrFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	p, err := startProc("nhncert-emulator", e.emu.proc.logPath, baseEnv(e.dir), bins.emulator,
		"-listen", addr, "-addr-file", addrFile, "-seed", "demo",
		"-app-key", e.emu.appKey, "-access-key-id", e.emu.accessKeyID, "-secret-access-key", e.emu.secret)
	if err != nil {
		return err
	}
	e.emu.proc = p
	return poll(startTimeout, "the restarted emulator's /_emulator/health", p, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := e.emu.admin.Health(ctx)
		return err == nil, err
	})
}
