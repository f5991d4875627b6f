package emulator

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

// faultEnv has one EC certificate "f.example.com" and a token.
func faultEnv(t *testing.T) (*env, string, *Chain) {
	t.Helper()
	e := newEnv(t)
	ch, err := GenerateChain(ChainOptions{CommonName: "f.example.com", CA: sharedTestCA(t)})
	require.NoError(t, err)
	e.s.PutChain("f.example.com", ch, FileOptions{})
	return e, e.token(), ch
}

func TestFaultGeneralModes(t *testing.T) {
	e, tok, _ := faultEnv(t)
	list := func() resp { return e.v13(tok, "") }

	e.s.SetFault(Fault{Mode: FaultDown})
	r := list()
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	h := r.nhnHeader(t)
	require.False(t, h.IsSuccessful)
	require.Equal(t, 503, h.ResultCode)
	// The admin API is never affected.
	require.Equal(t, http.StatusOK, e.do(e.newReq(context.Background(), http.MethodGet, "/_emulator/health", nil)).status)

	e.s.SetFault(Fault{Mode: FaultFlaky, Count: 2})
	require.Equal(t, http.StatusInternalServerError, list().status)
	require.Equal(t, http.StatusInternalServerError, list().status)
	require.Equal(t, http.StatusOK, list().status)
	require.Equal(t, http.StatusOK, list().status)

	e.s.SetFault(Fault{Mode: FaultTooMany, RetryAfter: 7})
	for range 3 { // Count 0: every request
		r = list()
		require.Equal(t, http.StatusTooManyRequests, r.status)
		require.Equal(t, "7", r.header.Get("Retry-After"))
		require.Equal(t, 429, r.nhnHeader(t).ResultCode)
	}
	e.s.SetFault(Fault{Mode: FaultTooMany, Count: 1})
	r = list()
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "1", r.header.Get("Retry-After"))
	require.Equal(t, http.StatusOK, list().status)

	e.s.SetFault(Fault{Mode: FaultGarbage})
	r = list()
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.False(t, json.Valid(r.body))

	for code, msg := range ResultMessages {
		e.s.SetFault(Fault{Mode: FaultResult, ResultCode: code})
		r = e.v13(tok, "/f.example.com/files")
		want := http.StatusOK
		if code == ResultIDNotExist {
			want = http.StatusNotFound // as NHN's guide says of 52009
		}
		require.Equal(t, want, r.status, "resultCode %d", code)
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
		require.Equal(t, resultHeader{ResultCode: code, ResultMessage: msg}, r.nhnHeader(t))
		require.Contains(t, string(r.body), `"body":{}`)
	}

	e.s.SetFault(Fault{Mode: FaultSlow, Delay: 80 * time.Millisecond})
	start := time.Now()
	require.Equal(t, http.StatusOK, list().status)
	require.GreaterOrEqual(t, time.Since(start), 80*time.Millisecond)
	// The client giving up ends the wait.
	e.s.SetFault(Fault{Mode: FaultSlow, Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := e.newReq(ctx, http.MethodGet, cmPath("v1.3", ""), nil)
	req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+tok)
	start = time.Now()
	_, err := e.ts.Client().Do(req)
	require.Error(t, err)
	// The client gives up after 50 ms; the delay is 10 s. The bound is 5 s,
	// half the delay, so a loaded machine never trips it. (Do returns once
	// the client's context ends whatever the server does, so this bounds the
	// client's side only.)
	require.Less(t, time.Since(start), 5*time.Second)

	e.s.SetFault(Fault{Mode: FaultReset})
	req = e.newReq(context.Background(), http.MethodGet, cmPath("v1.3", ""), nil)
	req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+tok)
	_, err = e.ts.Client().Do(req)
	require.Error(t, err, "reset: the client sees a transport error")

	e.s.ClearFault()
	require.Equal(t, http.StatusOK, list().status)

	// Faulted requests are still counted.
	st := e.s.Stats()
	require.GreaterOrEqual(t, st.ListCalls, int64(15))
	require.EqualValues(t, len(ResultMessages), st.FileCalls)
}

func TestFaultTargets(t *testing.T) {
	e, tok, _ := faultEnv(t)

	e.s.SetFault(Fault{Mode: FaultDown, Target: "files"})
	require.Equal(t, http.StatusOK, e.v13(tok, "").status)
	require.Equal(t, http.StatusOK, e.do(e.tokenReq(testID, testSecret, "client_credentials")).status)
	require.Equal(t, http.StatusServiceUnavailable, e.v13(tok, "/f.example.com/files").status)
	require.Equal(t, http.StatusServiceUnavailable, e.v11("/f.example.com/files").status)

	e.s.SetFault(Fault{Mode: FaultDown, Target: "list"})
	require.Equal(t, http.StatusServiceUnavailable, e.v11("").status)
	require.Equal(t, http.StatusOK, e.v13(tok, "/f.example.com/files").status)

	e.s.SetFault(Fault{Mode: FaultFlaky, Target: "token", Count: 1})
	require.Equal(t, http.StatusOK, e.v13(tok, "").status, "does not use up the count")
	require.Equal(t, http.StatusInternalServerError, e.do(e.tokenReq(testID, testSecret, "client_credentials")).status)
	require.Equal(t, http.StatusOK, e.do(e.tokenReq(testID, testSecret, "client_credentials")).status)
	f, left := e.s.CurrentFault()
	require.Equal(t, FaultFlaky, f.Mode)
	require.Zero(t, left)

	// A fault answers before authentication.
	e.s.SetFault(Fault{Mode: FaultDown})
	require.Equal(t, http.StatusServiceUnavailable, e.v13("", "").status)
	require.Equal(t, http.StatusServiceUnavailable, e.v13Path(tok, "/nowhere").status)
}

func TestFaultFileModes(t *testing.T) {
	e, tok, ch := faultEnv(t)
	get := func() resp { return e.v13(tok, "/f.example.com/files") }

	e.s.SetFault(Fault{Mode: FaultBadPEM})
	require.Equal(t, http.StatusOK, e.v13(tok, "").status, "file modes leave lists alone")
	r := get()
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
	b, _ := pem.Decode(r.body)
	require.Nil(t, b, "not PEM")
	// Unknown names still answer 52000.
	require.Equal(t, 52000, e.v13(tok, "/nope/files").nhnHeader(t).ResultCode)

	e.s.SetFault(Fault{Mode: FaultMismatch, Target: "files"})
	r = get()
	require.Equal(t, http.StatusOK, r.status)
	leaf, certs, key := splitFile(t, r.body)
	require.Equal(t, ch.Leaf.Raw, leaf.Raw)
	require.Len(t, certs, 2)
	require.Contains(t, string(key), "BEGIN EC PRIVATE KEY", "same key encoding")
	_, err := tls.X509KeyPair(ch.LeafPEM, key)
	require.Error(t, err, "the key must not match the leaf")

	e.s.SetFault(Fault{Mode: FaultHuge})
	r = get()
	require.Equal(t, http.StatusOK, r.status)
	require.Greater(t, len(r.body), 1<<20)
	require.True(t, bytes.HasPrefix(r.body, []byte("-----BEGIN CERTIFICATE-----")))
	require.True(t, bytes.HasSuffix(r.body, ch.PEMFile(FileOptions{})))
	blocks := testkit.RequirePEMBlocks(t, r.body)
	require.Greater(t, len(blocks), 100)

	e.s.SetFault(Fault{Mode: FaultRotating})
	l1, _, k1 := splitFile(t, get().body)
	l2, _, k2 := splitFile(t, get().body)
	require.NotEqual(t, ch.Leaf.SerialNumber, l1.SerialNumber)
	require.NotEqual(t, l1.SerialNumber, l2.SerialNumber)
	testkit.RequireKeyPEMMatches(t, k1, l1)
	testkit.RequireKeyPEMMatches(t, k2, l2)

	e.s.SetFault(Fault{Mode: FaultBadPEM, Count: 1})
	require.Nil(t, func() *pem.Block { b, _ := pem.Decode(get().body); return b }())
	leaf, _, key = splitFile(t, get().body)
	testkit.RequireKeyPEMMatches(t, key, leaf)

	e.s.SetFault(Fault{Mode: FaultBadPEM, Target: "list"})
	r = get()
	leaf, _, key = splitFile(t, r.body)
	testkit.RequireKeyPEMMatches(t, key, leaf)
	require.EqualValues(t, 8, e.s.Stats().FileCallsByName["f.example.com"])
}

func TestFaultJSON(t *testing.T) {
	f := Fault{Mode: FaultSlow, Target: "files", Delay: 2 * time.Second, Count: 3, RetryAfter: 4, ResultCode: 52001}
	b, err := json.Marshal(f)
	require.NoError(t, err)
	require.JSONEq(t, `{"mode":"slow","target":"files","delay":"2s","count":3,"retry_after":4,"result_code":52001}`, string(b))
	var g Fault
	require.NoError(t, json.Unmarshal(b, &g))
	require.Equal(t, f, g)

	require.NoError(t, json.Unmarshal([]byte(`{"mode":"429","retry_after":5}`), &g))
	require.Equal(t, Fault{Mode: FaultTooMany, RetryAfter: 5}, g)
	require.NoError(t, json.Unmarshal([]byte(`{"mode":"slow","delay":1500000000}`), &g))
	require.Equal(t, 1500*time.Millisecond, g.Delay)
	require.Error(t, json.Unmarshal([]byte(`{"mode":"slow","delay":"soon"}`), &g))

	require.NoError(t, Fault{Mode: FaultResult, ResultCode: 52008}.Validate())
	require.Error(t, Fault{Mode: FaultResult, ResultCode: 404}.Validate())
	require.Error(t, Fault{Mode: "explode"}.Validate())
	require.Error(t, Fault{Mode: FaultDown, Target: "admin"}.Validate())
	require.Error(t, Fault{Mode: FaultSlow, Delay: -1}.Validate())
	require.NoError(t, Fault{}.Validate())
}
