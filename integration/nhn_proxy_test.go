package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
	"github.com/stretchr/testify/require"
)

// nhnProxy is an HTTP reverse proxy in the test process, put between the
// plugin and the emulator. It records every request (a testkit.Recorder),
// every bearer token (those the token service issued and those the plugin
// sent), every certificate file that passed, and can answer a file
// download itself with a given body.
type nhnProxy struct {
	rec *testkit.Recorder
	url string

	mu        sync.Mutex
	tokens    map[string]bool
	files     [][]byte          // every file body passed through or served
	overrides map[string][]byte // certificate name -> file body served instead of NHN's
	holds     map[string]*hold  // certificate name -> the next download is held
}

func newNHNProxy(t *testing.T, target string) *nhnProxy {
	t.Helper()
	tu, err := url.Parse(target)
	require.NoError(t, err)
	p := &nhnProxy{tokens: map[string]bool{}, overrides: map[string][]byte{}, holds: map[string]*hold{}}
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
	p.rec = testkit.NewRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := fileName(r.URL)
		p.mu.Lock()
		if v := r.Header.Get("X-NHN-AUTHORIZATION"); v != "" {
			if _, tok, ok := strings.Cut(v, " "); ok && tok != "" {
				p.tokens[tok] = true
			}
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
	p.url = p.rec.URL
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

// calls is how many downloads of name's file the proxy received.
func (p *nhnProxy) calls(name string) int {
	n := 0
	for _, r := range p.rec.Requests() {
		if fileName(r.URL) == name {
			n++
		}
	}
	return n
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

// requestCount is how many requests the proxy received.
func (p *nhnProxy) requestCount() int {
	return len(p.rec.Requests())
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
