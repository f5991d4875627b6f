package emulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"mime"
	"net/http"
	"strings"
	"time"
)

type tokenInfo struct {
	expires time.Time
	revoked bool
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed: use POST")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		writeError(w, http.StatusBadRequest, "Bad Request: Content-Type must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request: unreadable form body")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || !secureEqual(id, s.opts.AccessKeyID) || !secureEqual(secret, s.opts.SecretAccessKey) {
		s.mu.Lock()
		s.stats.TokenDenied++
		s.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="nhncloud-oauth"`)
		writeError(w, http.StatusUnauthorized, "Unauthorized: invalid User Access Key ID or Secret Access Key")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeError(w, http.StatusBadRequest, "Bad Request: grant_type must be client_credentials")
		return
	}
	tok := randomToken()
	now := s.now()
	s.mu.Lock()
	for k, t := range s.tokens {
		if !now.Before(t.expires) {
			delete(s.tokens, k)
		}
	}
	s.tokens[tok] = &tokenInfo{expires: now.Add(s.opts.TokenTTL)}
	s.stats.TokenIssued++
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.opts.TokenTTL / time.Second),
	})
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func secureEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// authenticate returns "" when the request carries valid credentials for the
// API version, else why not.
func (s *Server) authenticate(r *http.Request, version string) string {
	if version == "v1.1" {
		id, idOK := r.Header["X-Tc-Authentication-Id"]
		secret, secOK := r.Header["X-Tc-Authentication-Secret"]
		if !idOK || !secOK || len(id) != 1 || len(secret) != 1 {
			return "X-TC-AUTHENTICATION-ID and X-TC-AUTHENTICATION-SECRET are required"
		}
		if !secureEqual(id[0], s.opts.AccessKeyID) || !secureEqual(secret[0], s.opts.SecretAccessKey) {
			return "invalid User Access Key ID or Secret Access Key"
		}
		return ""
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("X-NHN-AUTHORIZATION")), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "X-NHN-AUTHORIZATION: Bearer <token> is required"
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	switch {
	case !ok:
		return "invalid access token"
	case t.revoked:
		return "the access token has been revoked"
	case !now.Before(t.expires):
		return "the access token has expired"
	}
	return ""
}

// RevokeTokens makes every token issued so far rejected from now on.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.revoked = true
	}
}
