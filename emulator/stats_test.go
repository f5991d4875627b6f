package emulator

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FilesServedByName counts the files sent whole: not a request its client
// gave up on while the emulator was slow, nor one a fault answered;
// FileCallsByName counts them all.
func TestStatsCountFilesServed(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.s.Seed("s", 1))
	const name = "s00000.example.com"
	tok := e.token()
	require.Equal(t, http.StatusOK, e.v13(tok, "/"+name+"/files").status)

	e.s.SetLatency(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	req := e.newReq(ctx, http.MethodGet, cmPath("v1.3", "/"+name+"/files"), nil)
	req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+tok)
	_, err := e.ts.Client().Do(req)
	cancel()
	require.Error(t, err)
	e.s.SetLatency(0)

	e.s.SetFault(Fault{Mode: FaultDown})
	require.NotEqual(t, http.StatusOK, e.v13(tok, "/"+name+"/files").status)
	e.s.ClearFault()

	// The abandoned request is counted once the handler sees it: wait for
	// that (bounded), then compare.
	require.Eventually(t, func() bool { return e.s.Stats().FileCallsByName[name] == 3 }, 10*time.Second, 10*time.Millisecond)
	st := e.s.Stats()
	require.EqualValues(t, 1, st.FilesServedByName[name], "files sent whole")
	e.s.ResetStats()
	require.Empty(t, e.s.Stats().FilesServedByName)
}
