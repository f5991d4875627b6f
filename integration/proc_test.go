package integration

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Bounds of the waits. Every wait polls a condition at pollInterval.
const (
	startTimeout = 60 * time.Second // a subprocess becoming ready
	stopTimeout  = 30 * time.Second // a subprocess exiting after SIGTERM
	cliTimeout   = 90 * time.Second // one vault CLI run
	pollInterval = 100 * time.Millisecond
)

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

// errProcessExited is returned by waits whose subprocess died.
var errProcessExited = errors.New("process exited")

// cmdOutput is one run of a command line tool (vault, kubectl): its
// arguments and what it printed.
type cmdOutput struct {
	args           []string
	stdout, stderr string
}
