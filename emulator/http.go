package emulator

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Paths served by the emulator.
const (
	TokenPath   = "/oauth2/token/create"
	AdminPrefix = "/_emulator"
)

const (
	kindToken = TargetToken
	kindList  = TargetList
	kindFiles = TargetFiles
	kindOther = "other"
)

type route struct {
	kind    string
	version string // "v1.1" or "v1.3"
	appKey  string
	name    string
	id      string // the certificateId segment of a download by ID, as sent
}

// parseRoute splits the path as sent (EscapedPath) on '/' and decodes each
// segment on its own, as an HTTP server hands a path parameter to NHN's
// code: "%2F" inside a name is part of the name, not a separator, and a
// space, '%', '?' or '#' arrives percent-encoded and is decoded once.
func parseRoute(r *http.Request) route {
	p := r.URL.EscapedPath()
	if p == TokenPath {
		return route{kind: kindToken}
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(segs) < 5 || segs[0] != "certmanager" || (segs[1] != "v1.1" && segs[1] != "v1.3") ||
		segs[2] != "appkeys" || segs[4] != "certificates" {
		return route{kind: kindOther}
	}
	appKey, err := url.PathUnescape(segs[3])
	if err != nil {
		return route{kind: kindOther}
	}
	rt := route{version: segs[1], appKey: appKey}
	switch {
	case len(segs) == 5:
		rt.kind = kindList
	case len(segs) == 7 && segs[6] == "files":
		name, err := url.PathUnescape(segs[5])
		if err != nil || name == "" {
			return route{kind: kindOther}
		}
		rt.kind, rt.name = kindFiles, name
	case len(segs) == 7 && segs[6] == "certificate-files" && rt.version == "v1.3":
		// Download by certificateId (v1.3 only); an ID that is not a
		// number is one that does not exist (52009).
		id, err := url.PathUnescape(segs[5])
		if err != nil {
			return route{kind: kindOther}
		}
		rt.kind, rt.id = kindFiles, id
	default:
		return route{kind: kindOther}
	}
	return rt
}

// ServeHTTP serves the token service, the v1.1 and v1.3 Certificate Manager
// API and the admin API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == AdminPrefix || strings.HasPrefix(r.URL.Path, AdminPrefix+"/") {
		s.serveAdmin(w, r)
		return
	}
	rt := parseRoute(r)

	s.mu.Lock()
	switch rt.kind {
	case kindToken:
		s.stats.TokenCalls++
	case kindList:
		s.stats.ListCalls++
	case kindFiles:
		s.stats.FileCalls++
		if rt.id != "" {
			s.stats.FileCallsByID[rt.id]++
		} else {
			s.stats.FileCallsByName[rt.name]++
		}
	}
	latency := s.latency
	s.mu.Unlock()

	if !sleep(r.Context(), latency) {
		return
	}
	if f, ok := s.takeFault(rt.kind, false); ok {
		if s.applyFault(w, r, f) {
			return
		}
	}
	switch rt.kind {
	case kindToken:
		s.serveToken(w, r)
	case kindList, kindFiles:
		s.serveCertManager(w, r, rt)
	default:
		writeError(w, http.StatusNotFound, "Not Found: "+r.URL.Path)
	}
}

func (s *Server) serveCertManager(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed: use GET")
		return
	}
	if msg := s.authenticate(r, rt.version); msg != "" {
		s.rejectAuth(w, http.StatusUnauthorized, "Unauthorized: "+msg)
		return
	}
	if s.opts.AppKey == "" || !secureEqual(rt.appKey, s.opts.AppKey) {
		s.rejectAuth(w, http.StatusForbidden, "Forbidden: unknown appKey")
		return
	}
	if rt.kind == kindList {
		s.serveList(w, r, rt)
	} else {
		s.serveFile(w, rt)
	}
}

func (s *Server) rejectAuth(w http.ResponseWriter, status int, msg string) {
	s.mu.Lock()
	s.stats.AuthRejected++
	s.mu.Unlock()
	writeError(w, status, msg)
}

// applyFault answers a request with a fault; false means go on normally.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	switch f.Mode {
	case FaultDown:
		writeError(w, http.StatusServiceUnavailable, "Service Unavailable (emulated fault)")
	case FaultReset:
		resetConn(w)
	case FaultSlow:
		return !sleep(r.Context(), f.Delay)
	case FaultFlaky:
		writeError(w, http.StatusInternalServerError, "Internal Server Error (emulated fault)")
	case FaultTooMany:
		ra := f.RetryAfter
		if ra <= 0 {
			ra = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(ra))
		writeError(w, http.StatusTooManyRequests, "Too Many Requests (emulated fault)")
	case FaultGarbage:
		body := []byte(`{"header":{"resultCode":0,"isSuccessful":tru<html>502 Bad Gateway</html>`)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	case FaultResult:
		writeResult(w, f.ResultCode)
	default:
		return false
	}
	return true
}

// resetConn closes the connection without an answer.
func resetConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST rather than FIN
			}
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 or a wrapper without Hijack: abort the response.
	panic(http.ErrAbortHandler)
}
