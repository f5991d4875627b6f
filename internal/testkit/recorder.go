package testkit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Recorder is a loopback HTTP server in front of a handler that keeps a
// copy of every request it was sent, for tests that assert what reached
// the upstream (and what never did).
type Recorder struct {
	*httptest.Server

	mu       sync.Mutex
	requests []*http.Request
}

// NewRecorder starts a Recorder serving h; the test's cleanup closes it.
func NewRecorder(t testing.TB, h http.Handler) *Recorder {
	r := &Recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Clone(context.Background()))
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

// Requests returns the requests received so far, oldest first.
func (r *Recorder) Requests() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.requests...)
}

// RequestURIs returns the RequestURI of every request received so far.
func (r *Recorder) RequestURIs() []string {
	reqs := r.Requests()
	out := make([]string, len(reqs))
	for i, req := range reqs {
		out[i] = req.RequestURI
	}
	return out
}

// Reset forgets the requests received so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.requests = nil
	r.mu.Unlock()
}
