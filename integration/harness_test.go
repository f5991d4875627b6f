package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// Bounds of the waits. Every wait polls a condition at pollInterval.
const (
	startTimeout = 60 * time.Second // a subprocess becoming ready
	stopTimeout  = 30 * time.Second // a subprocess exiting after SIGTERM
	cliTimeout   = 90 * time.Second // one vault CLI run
	pollInterval = 100 * time.Millisecond
)

// ---------------------------------------------------------------------------
// Subprocesses

// proc is a subprocess whose stdout and stderr go to a log file. It runs in
// a process group of its own, so that stopping it also stops what it
// started (Vault's plugin processes).
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "==== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), filepath.Base(bin), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		fmt.Fprintf(f, "==== %s: exited: %v\n", time.Now().Format(time.RFC3339Nano), p.waitErr)
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits (bounded) for the process to exit, then kills
// whatever is left of its process group. It returns the exit error, or an
// error if the process had to be killed.
func (p *proc) stop() error {
	var err error
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			err = p.waitErr
		case <-time.After(stopTimeout):
			err = fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, stopTimeout)
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(stopTimeout):
			}
		}
	}
	// Plugin processes Vault left behind, if any.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	return err
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(lines)-n, path)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// poll calls cond every pollInterval until it reports done, returns an
// error, or timeout passes; a nil p, or one that is still running, is
// required throughout. The error names what and the last reason cond gave.
func poll(timeout time.Duration, what string, p *proc, cond func() (done bool, reason error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		done, reason := cond()
		if done {
			return nil
		}
		last = reason
		if p != nil && p.exited() {
			return fmt.Errorf("waiting for %s: %s %w (%v); last: %v", what, p.name, errProcessExited, p.waitErr, last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: not done after %s; last: %v", what, timeout, last)
		}
		time.Sleep(pollInterval)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// baseEnv is the test's environment without VAULT_* variables (which
// would point the subprocesses at some other Vault), with HOME set to home
// (so that Vault's token helper never touches the user's ~/.vault-token).
func baseEnv(home string, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	return append(append(out, "HOME="+home), extra...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// ---------------------------------------------------------------------------
// The NHN emulator

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
	if err != nil {
		t.Fatalf("emulator stats: %v", err)
	}
	return st
}

// ctxT is a context bounded by 60s for one admin or API call.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ---------------------------------------------------------------------------
// Vault

// vaultServer is a Vault server subprocess, in dev mode or in "real" mode
// (HCL config, file storage, init and unseal).
type vaultServer struct {
	mode       string // "dev" or "real"
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
}

// newVaultServer prepares dir/vault (plugin directory with the plugin
// binary copied in, log file, HCL config in real mode) without starting it.
func newVaultServer(dir, mode string) (*vaultServer, error) {
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

// startVault starts a Vault of the given mode in dir and makes it ready:
// dev mode is unsealed with root token "root"; real mode is initialised
// (one key share) and unsealed.
func startVault(dir, mode string) (*vaultServer, error) {
	return startVaultWith(dir, mode, nil)
}

// startVaultWith is startVault with prep (if not nil) called on the
// prepared server before it starts, to set extraArgs.
func startVaultWith(dir, mode string, prep func(*vaultServer)) (*vaultServer, error) {
	v, err := newVaultServer(dir, mode)
	if err != nil {
		return nil, err
	}
	if prep != nil {
		prep(v)
	}
	// A port picked by freePort can be taken before Vault binds it: retry.
	for attempt := 1; ; attempt++ {
		if v.port, err = freePort(); err != nil {
			return v, err
		}
		v.addr = fmt.Sprintf("http://127.0.0.1:%d", v.port)
		if mode == "real" {
			if err := v.writeConfig(); err != nil {
				return v, err
			}
		}
		err = v.start()
		if err == nil || attempt == 3 || !strings.Contains(tail(v.logPath, 30), "address already in use") {
			break
		}
		v.proc.stop()
	}
	if err != nil {
		return v, err
	}
	if mode == "real" {
		if err := v.initAndUnseal(); err != nil {
			return v, err
		}
	}
	return v, nil
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
	case "dev":
		args = []string{"server", "-dev", "-dev-root-token-id=root",
			fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", v.port),
			"-dev-plugin-dir=" + v.pluginDir}
		v.rootToken = "root"
	case "real":
		args = []string{"server", "-config=" + v.configPath}
	default:
		return fmt.Errorf("unknown Vault mode %q", v.mode)
	}
	args = append(args, v.extraArgs...)
	p, err := startProc("vault server ("+v.mode+")", v.logPath, baseEnv(v.home), bins.vault, args...)
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
		if v.mode == "dev" && (h.Sealed || h.Standby || !h.Initialized) {
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

// cliResult is one run of the vault CLI.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("`vault %s` exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cli runs the vault CLI against v with token (none if ""), stdin as its
// input.
func (v *vaultServer) cli(token, stdin string, args ...string) cliResult {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.vault, args...)
	env := baseEnv(v.home, "VAULT_ADDR="+v.addr, "NO_COLOR=1")
	if token != "" {
		env = append(env, "VAULT_TOKEN="+token)
	}
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := cliResult{args: args, stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		r.code = -1
		r.stderr += "\n(run error: " + err.Error() + ")"
	}
	if ctx.Err() != nil {
		r.stderr += fmt.Sprintf("\n(timed out after %s)", cliTimeout)
	}
	return r
}

// rawResponse is an HTTP answer of Vault.
type rawResponse struct {
	status int
	body   []byte
}

// vaultErrors decodes {"errors":[...]}.
func (r rawResponse) errors() []string {
	var e struct {
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Errors
}

// data decodes {"data":{...}}.
func (r rawResponse) data() map[string]any {
	var e struct {
		Data map[string]any `json:"data"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Data
}

func (r rawResponse) String() string {
	return fmt.Sprintf("HTTP %d %s", r.status, bytes.TrimSpace(r.body))
}

var noRedirect = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// raw sends one HTTP request to v: rawPath is put after /v1/ as it is
// (percent escapes included), body (if not nil) is sent as JSON.
func (v *vaultServer) raw(token, method, rawPath string, query url.Values, body any) (rawResponse, error) {
	u := rawPath
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return rawResponse{}, err
		}
	}
	return v.rawBytes(token, method, u, b)
}

// rawBytes is raw with a body sent as it is (as JSON content), none when
// nil; rawPath may carry a query.
func (v *vaultServer) rawBytes(token, method, rawPath string, body []byte) (rawResponse, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, v.addr+"/v1/"+rawPath, rd)
	if err != nil {
		return rawResponse{}, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return rawResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, body: b}, err
}

// clientWithToken is a copy of v's API client that uses token.
func (v *vaultServer) clientWithToken(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := v.client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// ---------------------------------------------------------------------------
// A Vault with the plugin mounted and an emulator behind it

type env struct {
	dir   string
	vault *vaultServer
	emu   *emu
}

// setupEnv starts an emulator and a Vault in dir, registers the plugin
// (CLI, by sha256, with its version), enables it at nhncert/ and points its
// config at the emulator. A non-nil env is returned whenever something was
// started, also with an error, so that the caller can stop it.
func setupEnv(dir, mode string, emulatorArgs ...string) (*env, error) {
	return setupEnvWith(dir, mode, nil, emulatorArgs...)
}

// setupEnvWith is setupEnv with prep passed to startVaultWith.
func setupEnvWith(dir, mode string, prep func(*vaultServer), emulatorArgs ...string) (*env, error) {
	e := &env{dir: dir}
	em, err := startEmulator(dir, emulatorArgs...)
	if em != nil {
		e.emu = em
	}
	if err != nil {
		if em == nil {
			return nil, err
		}
		return e, err
	}
	v, err := startVaultWith(dir, mode, prep)
	if v != nil {
		e.vault = v
	}
	if err != nil {
		return e, err
	}
	if err := e.registerPlugin(); err != nil {
		return e, err
	}
	if err := e.enable(mount); err != nil {
		return e, err
	}
	return e, e.configure(mount)
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
	args := append([]string{"write", path + "/config",
		"endpoint=" + e.emu.url, "auth_endpoint=" + e.emu.url,
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

// ---------------------------------------------------------------------------
// Small test helpers

// tokenWithPolicy writes policy (HCL) under name and returns a new token
// with it, valid for 1 hour; createArgs go to "vault token create" (such
// as -no-default-policy).
func tokenWithPolicy(t *testing.T, v *vaultServer, name, policy string, createArgs ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name+".hcl")
	if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, v, "policy", "write", name, file)
	out := mustCLI(t, v, append([]string{"token", "create", "-policy=" + name, "-ttl=1h", "-format=json"}, createArgs...)...)
	var tok struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Auth.ClientToken == "" {
		t.Fatalf("vault token create: %v\n%s", err, out)
	}
	return tok.Auth.ClientToken
}

// mustCLI runs the vault CLI with the root token and fails the test unless
// it exits 0; it returns stdout.
func mustCLI(t *testing.T, v *vaultServer, args ...string) string {
	t.Helper()
	r := v.cli(v.rootToken, "", args...)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	return r.stdout
}

// mustRaw is raw that fails the test on a transport error.
func mustRaw(t *testing.T, v *vaultServer, token, method, rawPath string, query url.Values, body any) rawResponse {
	t.Helper()
	r, err := v.raw(token, method, rawPath, query, body)
	if err != nil {
		t.Fatalf("%s /v1/%s: %v", method, rawPath, err)
	}
	return r
}

// assertNoSecret fails the test if the emulator's Secret Access Key shows
// up in s.
func assertNoSecret(t *testing.T, e *env, what, s string) {
	t.Helper()
	if strings.Contains(s, e.emu.secret) {
		t.Errorf("%s contains the Secret Access Key", what)
	}
}
