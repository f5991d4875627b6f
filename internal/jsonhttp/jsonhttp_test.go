package jsonhttp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			require.Equal(t, "application/json", r.Header.Get("Content-Type"))
			require.Equal(t, "v", r.Header.Get("X-Test"))
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, `{"error":"no such path"}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()

	var out map[string]int
	require.NoError(t, Do(ctx, nil, http.MethodPost, srv.URL+"/echo", http.Header{"X-Test": {"v"}}, map[string]int{"n": 7}, &out, 1<<20))
	require.Equal(t, map[string]int{"n": 7}, out)

	out = nil
	require.NoError(t, Do(ctx, srv.Client(), http.MethodGet, srv.URL+"/empty", nil, nil, &out, 1<<20))
	require.Nil(t, out, "an empty answer leaves out alone")

	err := Do(ctx, srv.Client(), http.MethodGet, srv.URL+"/nope", nil, nil, &out, 1<<20)
	var se *StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, http.StatusNotFound, se.StatusCode)
	var body struct{ Error string }
	require.NoError(t, json.Unmarshal(se.Body, &body))
	require.Equal(t, "no such path", body.Error)

	err = Do(ctx, srv.Client(), http.MethodPost, srv.URL+"/echo", http.Header{"X-Test": {"v"}}, "not an object", &out, 1<<20)
	require.ErrorContains(t, err, "decoding the answer")
}
