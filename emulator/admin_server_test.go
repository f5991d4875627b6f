package emulator

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAdminRawJSON(t *testing.T) {
	e := newEnv(t)
	send := e.sendJSON
	// The documented example body, with "intermediates":0 meaning none.
	r := send(http.MethodPost, "/_emulator/certs", `{"name":"x","key_type":"rsa","expired":false,"intermediates":0,"include_root":false,"shuffle":false}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	m := r.json(t)
	require.Equal(t, "x", m["name"])
	require.NotEmpty(t, m["serial"])
	_, err := time.Parse(time.RFC3339, m["not_after"].(string))
	require.NoError(t, err)
	c, _ := e.s.Get("x")
	_, certs, key := splitFile(t, c.File)
	require.Len(t, certs, 1)
	require.Contains(t, string(key), "BEGIN RSA PRIVATE KEY")

	// Intermediates left out: one.
	r = send(http.MethodPost, "/_emulator/certs", `{"name":"y"}`)
	require.Equal(t, http.StatusOK, r.status)
	c, _ = e.s.Get("y")
	_, certs, _ = splitFile(t, c.File)
	require.Len(t, certs, 2)

	require.Equal(t, http.StatusBadRequest, send(http.MethodPost, "/_emulator/certs", `{"name":"z","colour":"red"}`).status)
	require.Equal(t, http.StatusBadRequest, send(http.MethodPost, "/_emulator/certs", `not json`).status)
	require.Equal(t, http.StatusBadRequest, send(http.MethodPost, "/_emulator/certs", `{"name":"z","intermediates":99}`).status)

	r = send(http.MethodPost, "/_emulator/rotate?name=x", "")
	require.Equal(t, http.StatusOK, r.status)
	require.NotEqual(t, m["serial"], r.json(t)["serial"])
	require.Equal(t, http.StatusBadRequest, send(http.MethodPost, "/_emulator/rotate", "").status)

	r = send(http.MethodPut, "/_emulator/latency", `{"delay":"200ms"}`)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, 200*time.Millisecond, e.s.Latency())
	require.Equal(t, "200ms", send(http.MethodGet, "/_emulator/latency", "").json(t)["delay"])
	require.Equal(t, http.StatusBadRequest, send(http.MethodPut, "/_emulator/latency", `{"delay":"-1s"}`).status)
	e.s.SetLatency(0)

	r = send(http.MethodPut, "/_emulator/fault", `{"mode":"429","target":"token","retry_after":3,"count":2}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, float64(2), r.json(t)["remaining"])
	f, _ := e.s.CurrentFault()
	require.Equal(t, Fault{Mode: FaultTooMany, Target: "token", RetryAfter: 3, Count: 2}, f)
	require.Equal(t, http.StatusBadRequest, send(http.MethodPut, "/_emulator/fault", `{"mode":"down","target":"everything"}`).status)
	require.Equal(t, http.StatusOK, send(http.MethodDelete, "/_emulator/fault", "").status)
	f, _ = e.s.CurrentFault()
	require.Equal(t, FaultNone, f.Mode)

	r = send(http.MethodPost, "/_emulator/seed", `{"prefix":"bulk","count":30}`)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, float64(32), r.json(t)["total"])
	require.Equal(t, http.StatusBadRequest, send(http.MethodPost, "/_emulator/seed", `{"prefix":"a/b","count":3}`).status)

	r = send(http.MethodDelete, "/_emulator/certs?name=x", "")
	require.Equal(t, true, r.json(t)["removed"])
	r = send(http.MethodDelete, "/_emulator/certs?name=x", "")
	require.Equal(t, false, r.json(t)["removed"])

	require.Equal(t, http.StatusOK, send(http.MethodPost, "/_emulator/tokens/revoke", "").status)
	require.Equal(t, http.StatusOK, send(http.MethodGet, "/_emulator/stats", "").status)
	require.Equal(t, http.StatusOK, send(http.MethodDelete, "/_emulator/stats", "").status)
	require.Equal(t, "ok", send(http.MethodGet, "/_emulator/health", "").json(t)["status"])
	require.Equal(t, http.StatusNotFound, send(http.MethodGet, "/_emulator/nothing", "").status)
	r = send(http.MethodPatch, "/_emulator/health", "")
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	require.Equal(t, "GET", r.header.Get("Allow"))
}
