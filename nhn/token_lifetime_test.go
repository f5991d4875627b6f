package nhn

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// CONTRACT: "An expires_in outside 60..86400, or not a number, is clamped
// into that range (not a number: 60); a token is never treated as expired
// before it is used, and never kept past 24 hours."
func TestTokenLifetimeClamped(t *testing.T) {
	for raw, want := range map[string]time.Duration{
		``: 24 * time.Hour, `null`: 24 * time.Hour,
		`3600`: time.Hour, `"3600"`: time.Hour, `60`: time.Minute, `86400`: 24 * time.Hour,
		`1e12`: 24 * time.Hour, `1e400`: 24 * time.Hour, `86401`: 24 * time.Hour,
		`30`: time.Minute, `0`: time.Minute, `-5`: time.Minute, `-1e400`: time.Minute,
		`"NaN"`: time.Minute, `"abc"`: time.Minute, `true`: time.Minute,
	} {
		require.Equal(t, want, tokenLifetime(json.RawMessage(raw)), "expires_in %s", raw)
	}

	// Through the client: a token service that says 1e12 (or NaN) gives
	// a token kept at most 24 h, issued once for many requests.
	for _, expires := range []string{`1e12`, `"NaN"`} {
		var issued atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			issued.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"tok","token_type":"Bearer","expires_in":%s}`, expires)
		}))
		c := New(Config{APIVersion: V13, Endpoint: srv.URL, AuthEndpoint: srv.URL, AppKey: "k",
			AccessKeyID: "id", SecretAccessKey: "s", Timeout: 2 * time.Second, UserAgent: testUserAgent})
		for range 5 {
			tok, err := c.bearer(context.Background())
			require.NoError(t, err)
			require.Equal(t, "tok", tok)
		}
		require.EqualValues(t, 1, issued.Load(), "expires_in %s: tokens issued for 5 requests", expires)
		exp := c.TokenExpiresAt()
		require.True(t, exp.After(time.Now()), "expires_in %s: the token expires at %s, in the past", expires, exp)
		require.True(t, exp.Before(time.Now().Add(24*time.Hour+time.Second)), "expires_in %s: kept past 24 h (%s)", expires, exp)
		c.Close()
		srv.Close()
	}
}
