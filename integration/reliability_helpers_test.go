package integration

// Helpers of the reliability tests (faults_test.go, hostile_test.go,
// secrets_test.go, ha_test.go, bound_test.go).

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// newEnvWith is newEnv with prep called on the Vault server before it
// starts (to add command-line arguments).
func newEnvWith(t *testing.T, mode string, prep func(*vaultServer), emulatorArgs ...string) *env {
	t.Helper()
	requireVault(t)
	dir := t.TempDir()
	e, err := setupEnvWith(dir, mode, prep, emulatorArgs...)
	if e != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("logs of this test's Vault and emulator:\n%s", e.logTails())
			}
			e.close()
		})
	}
	if err != nil {
		t.Fatalf("starting Vault (%s mode) and the emulator: %v", mode, err)
	}
	return e
}

// warnings decodes {"warnings":[...]}.
func (r rawResponse) warnings() []string {
	var w struct {
		Warnings []string `json:"warnings"`
	}
	_ = json.Unmarshal(r.body, &w)
	return w.Warnings
}

// says is what the user sees besides the data: the errors of an error
// answer, else the warnings.
func (r rawResponse) says() string {
	if errs := r.errors(); len(errs) > 0 {
		for i, e := range errs {
			errs[i] = oneLine(e)
		}
		return strings.Join(errs, "; ")
	}
	return strings.Join(r.warnings(), "; ")
}

// oneLine shows an error of Vault on one line: the plugin's coded errors
// come back as "1 error occurred:\n\t* <message>\n\n".
func oneLine(s string) string {
	s = strings.TrimSpace(strings.TrimPrefix(s, "1 error occurred:"))
	s = strings.TrimPrefix(s, "* ")
	return strings.Join(strings.Fields(s), " ")
}

// timedRaw is mustRaw that also returns how long the answer took.
func timedRaw(t *testing.T, v *vaultServer, method, rawPath string, query url.Values) (rawResponse, time.Duration) {
	t.Helper()
	start := time.Now()
	r := mustRaw(t, v, v.rootToken, method, rawPath, query, nil)
	return r, time.Since(start)
}

// waitUntil waits until the clock passes when (a known instant such as
// the end of a cache_ttl), at most bound.
func waitUntil(t *testing.T, when time.Time, bound time.Duration) {
	t.Helper()
	if d := time.Until(when); d > bound {
		t.Fatalf("waitUntil: %s is %s away, more than the bound %s", when.Format(time.RFC3339Nano), d, bound)
	}
	if err := poll(bound+time.Second, "the clock to pass "+when.Format(time.RFC3339Nano), nil, func() (bool, error) {
		return time.Now().After(when), nil
	}); err != nil {
		t.Fatal(err)
	}
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
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return n
}

// ---------------------------------------------------------------------------
// A recording proxy in front of the emulator

// nhnProxy is an HTTP reverse proxy in the test process, put between the
// plugin and the emulator. It records every bearer token (those the token
// service issued and those the plugin sent), every certificate file that
// passed, and can answer a file download itself with a given body.
type nhnProxy struct {
	srv *httptest.Server
	url string

	mu        sync.Mutex
	tokens    map[string]bool
	files     [][]byte          // every file body passed through or served
	overrides map[string][]byte // certificate name -> file body served instead of NHN's
	holds     map[string]*hold  // certificate name -> the next download is held
	fileCalls map[string]int
	requests  int
}

func newNHNProxy(t *testing.T, target string) *nhnProxy {
	t.Helper()
	tu, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &nhnProxy{tokens: map[string]bool{}, overrides: map[string][]byte{}, fileCalls: map[string]int{}, holds: map[string]*hold{}}
	rp := httputil.NewSingleHostReverseProxy(tu)
	rp.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		p.mu.Lock()
		defer p.mu.Unlock()
		switch {
		case resp.Request.URL.Path == emulator.TokenPath:
			var a struct {
				AccessToken string `json:"access_token"`
			}
			if json.Unmarshal(body, &a) == nil && a.AccessToken != "" {
				p.tokens[a.AccessToken] = true
			}
		case fileName(resp.Request.URL) != "" && resp.StatusCode == 200:
			p.files = append(p.files, body)
		}
		return nil
	}
	// A held download has NHN's answer in hand; it is given to the plugin
	// (or replaced) only when the test releases it.
	modify := rp.ModifyResponse
	rp.ModifyResponse = func(resp *http.Response) error {
		if err := modify(resp); err != nil {
			return err
		}
		name := fileName(resp.Request.URL)
		p.mu.Lock()
		h := p.holds[name]
		delete(p.holds, name)
		p.mu.Unlock()
		if h == nil {
			return nil
		}
		close(h.arrived)
		select {
		case <-h.release:
		case <-time.After(30 * time.Second):
		}
		if h.replace != nil {
			resp.Body = io.NopCloser(bytes.NewReader(h.replace))
			resp.ContentLength = int64(len(h.replace))
			resp.Header.Set("Content-Length", fmt.Sprint(len(h.replace)))
			resp.Header.Set("Content-Type", "application/octet-stream")
		}
		return nil
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := fileName(r.URL)
		p.mu.Lock()
		p.requests++
		if v := r.Header.Get("X-NHN-AUTHORIZATION"); v != "" {
			if _, tok, ok := strings.Cut(v, " "); ok && tok != "" {
				p.tokens[tok] = true
			}
		}
		if name != "" {
			p.fileCalls[name]++
		}
		body, override := p.overrides[name]
		if override {
			p.files = append(p.files, body)
		}
		p.mu.Unlock()
		if override {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	p.url = p.srv.URL
	return p
}

// fileName returns the certificate name of a file download path
// (/certmanager/<v>/appkeys/<k>/certificates/<name>/files), else "".
func fileName(u *url.URL) string {
	segs := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	if len(segs) != 7 || segs[0] != "certmanager" || segs[4] != "certificates" || segs[6] != "files" {
		return ""
	}
	n, err := url.PathUnescape(segs[5])
	if err != nil {
		return ""
	}
	return n
}

func (p *nhnProxy) override(name string, file []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.overrides[name] = file
}

func (p *nhnProxy) calls(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fileCalls[name]
}

func (p *nhnProxy) seenTokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.tokens))
	for tok := range p.tokens {
		out = append(out, tok)
	}
	return out
}

func (p *nhnProxy) seenFiles() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.files...)
}

// parseLeaf returns the first CERTIFICATE of a PEM text (the leaf, in a
// certificate field or a pem_bundle).
func parseLeaf(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	for rest := []byte(s); ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			t.Fatalf("no CERTIFICATE block in %q", s)
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
}

// requestCount is how many requests the proxy received.
func (p *nhnProxy) requestCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// clearOverride makes the proxy pass name's downloads to NHN again.
func (p *nhnProxy) clearOverride(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.overrides, name)
}

// hold is a download of one name that the proxy holds back.
type hold struct {
	arrived chan struct{} // closed when NHN's answer is in the proxy's hands
	release chan struct{} // closed by the test to let it go (at most 30s)
	replace []byte        // if not nil, what the plugin gets instead of NHN's answer
}

// holdNext holds the next download of name once NHN answered it, until
// the returned release is called; replace (if not nil) is then sent
// instead of NHN's answer. arrived is closed when NHN has answered.
func (p *nhnProxy) holdNext(name string, replace []byte) (arrived <-chan struct{}, release func()) {
	h := &hold{arrived: make(chan struct{}), release: make(chan struct{}), replace: replace}
	p.mu.Lock()
	p.holds[name] = h
	p.mu.Unlock()
	var once sync.Once
	return h.arrived, func() { once.Do(func() { close(h.release) }) }
}
