package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

// vaultMode is how a Vault server runs.
type vaultMode string

const (
	devVault  vaultMode = "dev"  // -dev: in memory, unsealed, root token "root"
	realVault vaultMode = "real" // HCL config, file (or raft) storage, init and unseal
)

// vaultServer is a Vault server subprocess, in dev mode or in "real" mode
// (HCL config, file storage, init and unseal).
type vaultServer struct {
	mode       vaultMode
	dir        string
	home       string
	port       int
	addr       string // http://127.0.0.1:port
	pluginDir  string
	pluginSHA  string
	configPath string
	logPath    string
	proc       *proc
	rootToken  string
	unsealKey  string
	client     *api.Client // root token
	// extraArgs are added to the `vault server` command line (for
	// instance -log-level=trace); set them before start.
	extraArgs []string
	// wrap, when set, runs `vault server` under it (the chaos run's
	// `ip netns exec <ns>`, which execs Vault: the pid stays Vault's).
	wrap []string
}

// newVaultServer prepares dir/vault (plugin directory with the plugin
// binary copied in, log file) without starting it; its ports and config
// are picked when it starts (startOnFreePorts).
func newVaultServer(dir string, mode vaultMode) (*vaultServer, error) {
	v := &vaultServer{mode: mode, dir: filepath.Join(dir, "vault")}
	v.home = filepath.Join(v.dir, "home")
	v.pluginDir = filepath.Join(v.dir, "plugins")
	v.logPath = filepath.Join(dir, "vault.log")
	for _, d := range []string{v.home, v.pluginDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	sha, err := copyExecutable(bins.plugin, filepath.Join(v.pluginDir, pluginName))
	if err != nil {
		return nil, err
	}
	v.pluginSHA = sha
	return v, nil
}

// copyExecutable copies src to dst (mode 0755) and returns its sha256.
func copyExecutable(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// startVault starts a Vault of the given mode in dir, extraArgs added to
// its command line, and makes it ready: dev mode is unsealed with root
// token "root"; real mode is initialised (one key share) and unsealed.
func startVault(dir string, mode vaultMode, extraArgs ...string) (*vaultServer, error) {
	v, err := newVaultServer(dir, mode)
	if err != nil {
		return nil, err
	}
	v.extraArgs = extraArgs
	if err := v.startOnFreePorts(v.pickPort); err != nil {
		return v, err
	}
	if mode == realVault {
		if err := v.initAndUnseal(); err != nil {
			return v, err
		}
	}
	return v, nil
}

// startOnFreePorts starts v on the ports that pick chooses (and writes
// the config for). A port freePort picked can be taken before Vault binds
// it: then pick chooses again, up to 3 attempts in all.
func (v *vaultServer) startOnFreePorts(pick func() error) error {
	for attempt := 1; ; attempt++ {
		if err := pick(); err != nil {
			return err
		}
		err := v.start()
		if err == nil || attempt == 3 || !strings.Contains(tail(v.logPath, 30), "address already in use") {
			return err
		}
		v.proc.stop()
	}
}

// pickPort takes a free loopback port for the listener and, in real mode,
// writes the HCL config (file storage) for it.
func (v *vaultServer) pickPort() error {
	var err error
	if v.port, err = freePort(); err != nil {
		return err
	}
	v.addr = fmt.Sprintf("http://127.0.0.1:%d", v.port)
	if v.mode == realVault {
		return v.writeConfig()
	}
	return nil
}

func (v *vaultServer) writeConfig() error {
	v.configPath = filepath.Join(v.dir, "vault.hcl")
	cfg := fmt.Sprintf(`# nhncert integration test: a "real" (non-dev) Vault
storage "file" {
  path = %q
}

listener "tcp" {
  address     = "127.0.0.1:%d"
  tls_disable = true
}

plugin_directory = %q
disable_mlock    = true
api_addr         = %q
ui               = false
log_level        = "info"
`, filepath.Join(v.dir, "data"), v.port, v.pluginDir, v.addr)
	return os.WriteFile(v.configPath, []byte(cfg), 0o600)
}

// start starts the server process and waits until it answers sys/health
// (dev: unsealed and active; real: answering, sealed or not).
func (v *vaultServer) start() error {
	var args []string
	switch v.mode {
	case devVault:
		args = []string{"server", "-dev", "-dev-root-token-id=root",
			fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", v.port),
			"-dev-plugin-dir=" + v.pluginDir}
		v.rootToken = "root"
	case realVault:
		args = []string{"server", "-config=" + v.configPath}
	default:
		return fmt.Errorf("unknown Vault mode %q", v.mode)
	}
	args = append(args, v.extraArgs...)
	bin := bins.vault
	if len(v.wrap) > 0 {
		bin, args = v.wrap[0], append(append(append([]string(nil), v.wrap[1:]...), bins.vault), args...)
	}
	p, err := startProc("vault server ("+string(v.mode)+")", v.logPath, baseEnv(v.home), bin, args...)
	if err != nil {
		return err
	}
	v.proc = p
	cfg := api.DefaultConfig()
	cfg.Address = v.addr
	cfg.MaxRetries = 0
	cfg.Timeout = 60 * time.Second
	if v.client, err = api.NewClient(cfg); err != nil {
		return err
	}
	v.client.ClearNamespace()
	v.client.SetToken(v.rootToken)
	return poll(startTimeout, "Vault to answer sys/health", p, func() (bool, error) {
		h, err := v.client.Sys().Health()
		if err != nil {
			return false, err
		}
		if v.mode == devVault && (h.Sealed || h.Standby || !h.Initialized) {
			return false, fmt.Errorf("health: %+v", h)
		}
		return true, nil
	})
}

// initAndUnseal initialises a real-mode Vault with the CLI (one key
// share) and unseals it through the API.
func (v *vaultServer) initAndUnseal() error {
	r := v.cli("", "", "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
	if r.code != 0 {
		return fmt.Errorf("vault operator init: %s", r)
	}
	var out struct {
		Keys      []string `json:"unseal_keys_b64"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Keys) != 1 || out.RootToken == "" {
		return fmt.Errorf("vault operator init: unexpected output (%v): %s", err, r)
	}
	v.unsealKey, v.rootToken = out.Keys[0], out.RootToken
	v.client.SetToken(v.rootToken)
	return v.unseal()
}

// unseal unseals a real-mode Vault through the API and waits until it is
// active.
func (v *vaultServer) unseal() error {
	st, err := v.client.Sys().Unseal(v.unsealKey)
	if err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	if st.Sealed {
		return fmt.Errorf("still sealed after the only key share: %+v", st)
	}
	return poll(startTimeout, "Vault to be unsealed and active", v.proc, func() (bool, error) {
		h, err := v.client.Sys().Health()
		if err != nil {
			return false, err
		}
		return h.Initialized && !h.Sealed && !h.Standby, fmt.Errorf("health: %+v", h)
	})
}

// stop stops the server (SIGTERM, bounded wait).
func (v *vaultServer) stop() error {
	if v.proc == nil {
		return nil
	}
	return v.proc.stop()
}

// clientWithToken is a copy of v's API client that uses token.
func (v *vaultServer) clientWithToken(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := v.client.Clone()
	require.NoError(t, err)
	c.SetToken(token)
	return c
}

// cacheEntriesOnDisk counts the plugin's cache entries in a real-mode
// Vault's file storage: the entries are encrypted, their keys are not;
// each is a file under a directory named "cache" of a mount.
func cacheEntriesOnDisk(t *testing.T, v *vaultServer) int {
	t.Helper()
	n := 0
	root := filepath.Join(v.dir, "data", "logical")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Base(filepath.Dir(p)) == "cache" {
			n++
		}
		return nil
	})
	require.NoError(t, err, "walking %s", root)
	return n
}
