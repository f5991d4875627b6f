package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	// pluginName is the name the plugin is registered under.
	pluginName = "vault-plugin-secrets-nhncert"
	// modulePath is the plugin's Go module, for -ldflags -X.
	modulePath = "github.com/nhncert/vault-plugin-secrets-nhncert"
	// mount is where the tests enable the plugin.
	mount = "nhncert"
)

// bins are the binaries every test runs.
var bins struct {
	vault, plugin, emulator string
}

var (
	// wantVaultVersion is the Vault release the plugin is proven against
	// (CI's pin); `make compat` sets NHNCERT_VAULT_VERSION to run the
	// suite against another line's release.
	wantVaultVersion = "v1.21.0"
	// pluginVersion is the version the plugin binary reports and is
	// registered with.
	pluginVersion = "v0.1.0"
	// skipReason, when set, makes every test skip.
	skipReason string
	// setupErr, when set, makes every test fail: the binaries could not be
	// found or built.
	setupErr error
)

// TestMain finds or builds the binaries, runs the tests, then stops the
// shared Vault and emulator.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Getenv("NHNCERT_SKIP_VAULT") == "1" {
		skipReason = "NHNCERT_SKIP_VAULT=1: real-Vault integration test skipped; nothing was checked against a real Vault"
		return m.Run()
	}
	if v := os.Getenv("NHNCERT_VAULT_VERSION"); v != "" {
		wantVaultVersion = v
	}
	if v := os.Getenv("NHNCERT_PLUGIN_VERSION"); v != "" {
		pluginVersion = v
	}
	tmp, err := os.MkdirTemp("", "nhncert-integration-bin-")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	setupErr = findBinaries(tmp)
	if setupErr == nil {
		fmt.Fprintf(os.Stderr, "integration: vault=%s plugin=%s emulator=%s (ready in %s)\n",
			bins.vault, bins.plugin, bins.emulator, time.Since(start).Round(time.Millisecond))
	}
	code := m.Run()
	runGlobalCleanups()
	return code
}

// findBinaries fills bins from the environment, building what is missing
// into dir, and checks the Vault version.
func findBinaries(dir string) error {
	var err error
	if bins.plugin, err = binFromEnvOrBuild("NHNCERT_PLUGIN_BIN", dir, "vault-plugin-secrets-nhncert", true); err != nil {
		return err
	}
	if bins.emulator, err = binFromEnvOrBuild("NHNCERT_EMULATOR_BIN", dir, "nhncert-emulator", false); err != nil {
		return err
	}
	if v := os.Getenv("VAULT_BIN"); v != "" {
		bins.vault = v
	} else {
		fmt.Fprintln(os.Stderr, "integration: VAULT_BIN not set; asking ../scripts/vault.sh (the first build takes a long time)")
		cmd := exec.Command("../scripts/vault.sh")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("scripts/vault.sh: %w", err)
		}
		bins.vault = strings.TrimSpace(string(out))
	}
	if bins.vault, err = filepath.Abs(bins.vault); err != nil {
		return err
	}
	out, err := exec.Command(bins.vault, "version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s version: %w: %s", bins.vault, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != "Vault" || strings.TrimRight(f[1], ",") != wantVaultVersion {
		return fmt.Errorf("%s version says %q; these tests need Vault %s", bins.vault, strings.TrimSpace(string(out)), wantVaultVersion)
	}
	return nil
}

// binFromEnvOrBuild returns the absolute path in env var name, or builds
// ../cmd/<pkg> into dir.
func binFromEnvOrBuild(name, dir, pkg string, withVersion bool) (string, error) {
	if p := os.Getenv(name); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s=%s is not an executable file", name, p)
		}
		return abs, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building %s needs the go command on PATH: %w", pkg, err)
	}
	out := filepath.Join(dir, pkg)
	args := []string{"build", "-trimpath"}
	if withVersion {
		args = append(args, "-ldflags", "-X "+modulePath+".Version="+pluginVersion)
	}
	args = append(args, "-o", out, "../cmd/"+pkg)
	fmt.Fprintf(os.Stderr, "integration: %s not set; go %s\n", name, strings.Join(args, " "))
	cmd := exec.Command(goBin, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", pkg, err, buf.String())
	}
	return out, nil
}

// requireVault skips the test when NHNCERT_SKIP_VAULT=1 and fails it when
// the binaries are missing. Every test calls it first.
func requireVault(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	require.NoError(t, setupErr, "integration setup")
}

var globalCleanup struct {
	sync.Mutex
	fns []func()
}

// addGlobalCleanup registers f to run after every test (for the shared
// Vault and emulator, which outlive any one test).
func addGlobalCleanup(f func()) {
	globalCleanup.Lock()
	defer globalCleanup.Unlock()
	globalCleanup.fns = append(globalCleanup.fns, f)
}

func runGlobalCleanups() {
	globalCleanup.Lock()
	fns := globalCleanup.fns
	globalCleanup.fns = nil
	globalCleanup.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
