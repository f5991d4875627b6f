package integration

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// env is a Vault with the plugin registered (by sha256, with its
// version), enabled at nhncert/ and configured against an emulator of its
// own. newEnv builds one per test; sharedEnv is the one the read-only tests
// share.
type env struct {
	dir   string
	vault *vaultServer
	emu   *emu
}

// envConfig is what an env is built from; envOptions set it.
type envConfig struct {
	vaultMode    vaultMode
	vaultArgs    []string // added to the `vault server` command line
	emulatorArgs []string // added to the emulator's command line
	mountConfig  []string // key=value pairs added to the mount's config write
}

// envOption is an option of newEnv.
type envOption func(*envConfig)

// withVaultMode runs Vault in mode (devVault unless set).
func withVaultMode(mode vaultMode) envOption {
	return func(c *envConfig) { c.vaultMode = mode }
}

// withVaultArgs adds args to the `vault server` command line (for
// instance -log-level=trace).
func withVaultArgs(args ...string) envOption {
	return func(c *envConfig) { c.vaultArgs = append(c.vaultArgs, args...) }
}

// withEmulatorArgs adds args to the emulator's command line (for instance
// -bulk 10000).
func withEmulatorArgs(args ...string) envOption {
	return func(c *envConfig) { c.emulatorArgs = append(c.emulatorArgs, args...) }
}

// withMountConfig adds key=value pairs (for instance refresh_interval=0)
// to the config the mount is written with.
func withMountConfig(kv ...string) envOption {
	return func(c *envConfig) { c.mountConfig = append(c.mountConfig, kv...) }
}

// envConfigOf applies opts to the defaults: a dev Vault, an emulator with
// the demo set.
func envConfigOf(opts ...envOption) envConfig {
	c := envConfig{vaultMode: devVault}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// newEnv starts a Vault and an emulator of the test's own (a dev Vault and
// the demo set unless opts say otherwise), mounted and configured like the
// shared one; both are stopped when the test ends, and their log tails
// printed if it failed.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	requireVault(t)
	cfg := envConfigOf(opts...)
	e, err := startEnv(t.TempDir(), cfg)
	if e != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("logs of this test's Vault and emulator:\n%s", e.logTails())
			}
			e.close()
		})
	}
	require.NoError(t, err, "starting Vault (%s mode) and the emulator", cfg.vaultMode)
	return e
}

// newBareEnv starts an emulator and a Vault (mode) without the plugin, for
// tests that install it themselves (a release's binary, an upgrade), and
// stops them when the test ends.
func newBareEnv(t *testing.T, mode vaultMode) *env {
	t.Helper()
	e := &env{dir: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", e.logTails())
		}
		e.close()
	})
	var err error
	e.emu, err = startEmulator(e.dir)
	require.NoError(t, err)
	e.vault, err = startVault(e.dir, mode)
	require.NoError(t, err)
	return e
}

// startEnv starts an emulator and a Vault in dir as cfg says and mounts the
// plugin (mountPlugin): what newEnv and sharedEnv do, without a test to
// clean up after. A non-nil env is returned whenever something was
// started, also with an error, so that the caller can stop it.
func startEnv(dir string, cfg envConfig) (*env, error) {
	e := &env{dir: dir}
	em, err := startEmulator(dir, cfg.emulatorArgs...)
	if em != nil {
		e.emu = em
	}
	if err != nil {
		if em == nil {
			return nil, err
		}
		return e, err
	}
	v, err := startVault(dir, cfg.vaultMode, cfg.vaultArgs...)
	if v != nil {
		e.vault = v
	}
	if err != nil {
		return e, err
	}
	return e, e.mountPlugin(cfg.mountConfig...)
}

// mountPlugin registers the plugin, enables it at nhncert/ and points its
// config at the emulator, with extra key=value pairs.
func (e *env) mountPlugin(extra ...string) error {
	if err := e.registerPlugin(); err != nil {
		return err
	}
	if err := e.enable(mount); err != nil {
		return err
	}
	return e.configure(mount, extra...)
}

// registerPlugin registers the plugin binary by its sha256 and version.
func (e *env) registerPlugin() error {
	r := e.vault.cli(e.vault.rootToken, "", "plugin", "register", "-sha256="+e.vault.pluginSHA,
		"-version="+pluginVersion, "secret", pluginName)
	if r.code != 0 {
		return fmt.Errorf("registering the plugin: %s", r)
	}
	return nil
}

// enable mounts the registered version of the plugin at path.
func (e *env) enable(path string) error {
	r := e.vault.cli(e.vault.rootToken, "", "secrets", "enable", "-path="+path, "-plugin-version="+pluginVersion, pluginName)
	if r.code != 0 {
		return fmt.Errorf("enabling the plugin at %s: %s", path, r)
	}
	return nil
}

// configure writes path/config with the emulator's URL and credentials
// (the secret through stdin, never on a command line) and extra key=value
// pairs.
func (e *env) configure(path string, extra ...string) error {
	return e.configureEndpoint(path, e.emu.url, extra...)
}

// configureEndpoint is configure with endpoint (such as a proxy in front
// of the emulator) as the endpoint and auth_endpoint.
func (e *env) configureEndpoint(path, endpoint string, extra ...string) error {
	args := append([]string{"write", path + "/config",
		"endpoint=" + endpoint, "auth_endpoint=" + endpoint,
		"app_key=" + e.emu.appKey, "access_key_id=" + e.emu.accessKeyID,
		"secret_access_key=-"}, extra...)
	r := e.vault.cli(e.vault.rootToken, e.emu.secret, args...)
	if r.code != 0 {
		return fmt.Errorf("configuring %s: %s", path, r)
	}
	return nil
}

// logTails returns the last lines of the Vault and emulator logs.
func (e *env) logTails() string {
	var b strings.Builder
	if e.vault != nil {
		fmt.Fprintf(&b, "---- %s (tail) ----\n%s\n", e.vault.logPath, tail(e.vault.logPath, 80))
	}
	if e.emu != nil && e.emu.proc != nil {
		fmt.Fprintf(&b, "---- %s (tail) ----\n%s\n", e.emu.proc.logPath, tail(e.emu.proc.logPath, 40))
	}
	return b.String()
}

// close stops Vault, then the emulator.
func (e *env) close() {
	if e.vault != nil {
		_ = e.vault.stop()
	}
	if e.emu != nil && e.emu.proc != nil {
		_ = e.emu.proc.stop()
	}
}

// shared is the dev Vault and emulator that the read-only tests share.
var shared struct {
	once sync.Once
	env  *env
	err  error
}

// sharedEnv returns the shared dev Vault (plugin mounted at nhncert/ and
// configured) and its emulator (demo set, -max-page-size 10), starting them
// on first use. On failure the test gets the tails of their logs.
func sharedEnv(t *testing.T) *env {
	t.Helper()
	requireVault(t)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "nhncert-integration-shared-")
		if err != nil {
			shared.err = err
			return
		}
		e, err := startEnv(dir, envConfigOf(withEmulatorArgs("-max-page-size", "10")))
		if e != nil {
			addGlobalCleanup(func() {
				e.close()
				if !keepLogs() {
					os.RemoveAll(dir)
				} else {
					fmt.Fprintf(os.Stderr, "integration: shared logs kept in %s\n", dir)
				}
			})
		} else {
			os.RemoveAll(dir)
		}
		if err != nil {
			if e != nil {
				err = fmt.Errorf("%w\n%s", err, e.logTails())
			}
			shared.err = err
			return
		}
		shared.env = e
	})
	require.NoError(t, shared.err, "starting the shared Vault and emulator")
	e := shared.env
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the shared Vault and emulator:\n%s", e.logTails())
		}
	})
	return e
}

// keepLogs reports whether the shared environment's logs should be kept
// after the run (NHNCERT_KEEP_LOGS=1).
func keepLogs() bool { return os.Getenv("NHNCERT_KEEP_LOGS") == "1" }
