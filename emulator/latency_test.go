package emulator

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLatencyHonoursCancel(t *testing.T) {
	e := newEnv(t)
	tok := e.token()
	e.s.SetLatency(5 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req := e.newReq(ctx, http.MethodGet, cmPath("v1.3", ""), nil)
	req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+tok)
	start := time.Now()
	_, err := e.ts.Client().Do(req)
	require.Error(t, err)
	// The request gives up after 100 ms; the latency is 5 s. The bound is
	// 4 s, well under the latency, so a loaded machine never trips it. (Do
	// returns once the request's context ends whatever the server does, so
	// this bounds the client's side only.)
	require.Less(t, time.Since(start), 4*time.Second)

	// The admin API is never delayed: it answers well before the 5 s latency
	// would have passed (4 s, as above, for a loaded machine).
	start = time.Now()
	r := e.do(e.newReq(context.Background(), http.MethodGet, "/_emulator/health", nil))
	require.Equal(t, http.StatusOK, r.status)
	require.Less(t, time.Since(start), 4*time.Second)

	e.s.SetLatency(60 * time.Millisecond)
	start = time.Now()
	require.Equal(t, http.StatusOK, e.v13(tok, "").status)
	require.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond)
	e.s.SetLatency(0)
	require.Zero(t, e.s.Latency())
}
