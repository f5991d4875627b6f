package emulator

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTokenService(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TokenTTL = 90 * time.Second })

	r := e.do(e.tokenReq(testID, testSecret, "client_credentials"))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	m := r.json(t)
	require.Equal(t, "Bearer", m["token_type"])
	require.Equal(t, float64(90), m["expires_in"])
	require.NotEmpty(t, m["access_token"])
	require.NotEqual(t, m["access_token"], e.token(), "tokens are random")

	// Wrong and missing credentials: 401.
	for _, c := range [][2]string{{testID, "wrong"}, {"wrong", testSecret}, {"", ""}} {
		r = e.do(e.tokenReq(c[0], c[1], "client_credentials"))
		require.Equal(t, http.StatusUnauthorized, r.status)
		h := r.nhnHeader(t)
		require.False(t, h.IsSuccessful)
		require.Equal(t, 401, h.ResultCode)
		require.NotContains(t, string(r.body), testSecret)
	}
	// Wrong grant type: 400.
	r = e.do(e.tokenReq(testID, testSecret, "password"))
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Equal(t, 400, r.nhnHeader(t).ResultCode)
	// Wrong content type: 400.
	req := e.tokenReq(testID, testSecret, "client_credentials")
	req.Header.Set("Content-Type", "application/json")
	r = e.do(req)
	require.Equal(t, http.StatusBadRequest, r.status)
	require.False(t, r.nhnHeader(t).IsSuccessful)
	// Content type with a charset parameter is fine.
	req = e.tokenReq(testID, testSecret, "client_credentials")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	require.Equal(t, http.StatusOK, e.do(req).status)
	// Wrong method: 405.
	r = e.do(e.newReq(context.Background(), http.MethodGet, TokenPath, nil))
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	require.Equal(t, 405, r.nhnHeader(t).ResultCode)

	st := e.s.Stats()
	require.EqualValues(t, 3, st.TokenIssued)
	require.EqualValues(t, 3, st.TokenDenied)

	// TTL defaults and clamping.
	require.Equal(t, 24*time.Hour, New(Options{}).Options().TokenTTL)
	require.Equal(t, 60*time.Second, New(Options{TokenTTL: time.Second}).Options().TokenTTL)
	require.Equal(t, 86400*time.Second, New(Options{TokenTTL: 48 * time.Hour}).Options().TokenTTL)
	require.Equal(t, 61*time.Second, New(Options{TokenTTL: 61500 * time.Millisecond}).Options().TokenTTL)
}

func TestV13TokenAuth(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TokenTTL = time.Hour })
	tok := e.token()

	require.Equal(t, http.StatusOK, e.v13(tok, "").status)

	expect401 := func(r resp) {
		t.Helper()
		require.Equal(t, http.StatusUnauthorized, r.status, "%s", r.body)
		h := r.nhnHeader(t)
		require.False(t, h.IsSuccessful)
		require.Equal(t, 401, h.ResultCode)
	}
	expect401(e.v13("", ""))            // missing
	expect401(e.v13("not-a-token", "")) // unknown
	expect401(e.v13("", "/x.example.com/files"))
	req := e.newReq(context.Background(), http.MethodGet, cmPath("v1.3", ""), nil)
	req.Header.Set("X-NHN-AUTHORIZATION", tok) // no "Bearer"
	expect401(e.do(req))
	req = e.newReq(context.Background(), http.MethodGet, cmPath("v1.3", ""), nil)
	req.Header.Set("X-TC-AUTHENTICATION-ID", testID) // v1.1 headers do not work on v1.3
	req.Header.Set("X-TC-AUTHENTICATION-SECRET", testSecret)
	expect401(e.do(req))
	req = e.newReq(context.Background(), http.MethodGet, cmPath("v1.3", ""), nil)
	req.Header.Set("x-nhn-authorization", "bearer "+tok) // header name and scheme are case-insensitive
	require.Equal(t, http.StatusOK, e.do(req).status)

	// Revoked.
	e.s.RevokeTokens()
	expect401(e.v13(tok, ""))
	tok2 := e.token()
	require.Equal(t, http.StatusOK, e.v13(tok2, "").status)

	// Expired: move the clock past the TTL.
	e.clock.Advance(time.Hour - time.Second)
	require.Equal(t, http.StatusOK, e.v13(tok2, "").status)
	e.clock.Advance(time.Second)
	expect401(e.v13(tok2, ""))
	require.Equal(t, http.StatusOK, e.v13(e.token(), "").status, "a fresh token works")

	require.EqualValues(t, 7, e.s.Stats().AuthRejected)
}

func TestV11KeyHeaders(t *testing.T) {
	e := newEnv(t)
	e.s.Put(Certificate{Name: "a.example.com", ExpirationDate: "2999-01-01"})
	require.Equal(t, []string{"a.example.com"}, names(e.v11("").list(t)))

	for _, h := range []map[string]string{
		{"X-TC-AUTHENTICATION-ID": testID, "X-TC-AUTHENTICATION-SECRET": "wrong"},
		{"X-TC-AUTHENTICATION-ID": "wrong", "X-TC-AUTHENTICATION-SECRET": testSecret},
		{"X-TC-AUTHENTICATION-ID": testID},
		{},
	} {
		req := e.newReq(context.Background(), http.MethodGet, cmPath("v1.1", ""), nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		r := e.do(req)
		require.Equal(t, http.StatusUnauthorized, r.status, "headers %v", h)
		require.Equal(t, 401, r.nhnHeader(t).ResultCode)
		require.NotContains(t, string(r.body), testSecret)
	}
	// A v1.3 token does not work on v1.1, and v1.1 never needs one.
	req := e.newReq(context.Background(), http.MethodGet, cmPath("v1.1", ""), nil)
	req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+e.token())
	require.Equal(t, http.StatusUnauthorized, e.do(req).status)
	require.EqualValues(t, 5, e.s.Stats().AuthRejected)
}
