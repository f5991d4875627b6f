package nhncert

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
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
		c := newClient(clientConfig{APIVersion: apiV13, Endpoint: srv.URL, AuthEndpoint: srv.URL, AppKey: "k",
			AccessKeyID: "id", SecretAccessKey: "s", Timeout: 2 * time.Second, UserAgent: userAgent()}, hclog.NewNullLogger())
		for range 5 {
			tok, err := c.bearer(context.Background())
			require.NoError(t, err)
			require.Equal(t, "tok", tok)
		}
		require.EqualValues(t, 1, issued.Load(), "expires_in %s: tokens issued for 5 requests", expires)
		exp := c.tokenExpiresAt()
		require.True(t, exp.After(time.Now()), "expires_in %s: the token expires at %s, in the past", expires, exp)
		require.True(t, exp.Before(time.Now().Add(24*time.Hour+time.Second)), "expires_in %s: kept past 24 h (%s)", expires, exp)
		c.close()
		srv.Close()
	}
}

// CONTRACT: when DELETE config returns, "no request to NHN that carries
// [the old credentials], or a token issued for them, starts after the
// delete returns (a token exchange in flight included)". A read whose
// token exchange NHN keeps failing (and which retries it) is in flight
// when the config is deleted: after the delete returns NHN sees no
// request, and the read ends at once rather than after its retries.
func TestDeleteStopsTokenExchangeInFlight(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]any{"refresh_interval": "0"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown, Target: emulator.TargetToken})
	calls := func() int64 {
		st := h.emu.Stats()
		return st.TokenCalls + st.ListCalls + st.FileCalls
	}
	done := make(chan time.Time, 1)
	go func() {
		_, _ = h.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation,
			Path: "certs/example.com", Storage: h.storage, MountPoint: "nhncert/"})
		done <- time.Now()
	}()
	require.Eventually(t, func() bool { return h.emu.Stats().TokenCalls >= 1 }, 10*time.Second, time.Millisecond)
	_, err := h.request(logical.DeleteOperation, "config", nil)
	require.NoError(t, err)
	deleted, after := time.Now(), calls()
	var ended time.Time
	select {
	case ended = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the read in flight did not end within 30 s of the delete")
	}
	require.Equal(t, after, calls(), "requests reached NHN after the config delete returned")
	require.Less(t, ended.Sub(deleted), 2*time.Second, "the read in flight went on retrying with the deleted credentials")
}
