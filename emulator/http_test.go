package emulator

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnknownAppKeyPathAndMethod(t *testing.T) {
	e := newEnv(t)
	tok := e.token()
	for _, v := range []string{"v1.1", "v1.3"} {
		req := e.newReq(context.Background(), http.MethodGet, "/certmanager/"+v+"/appkeys/other-key/certificates", nil)
		req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+tok)
		req.Header.Set("X-TC-AUTHENTICATION-ID", testID)
		req.Header.Set("X-TC-AUTHENTICATION-SECRET", testSecret)
		r := e.do(req)
		require.Equal(t, http.StatusForbidden, r.status, v)
		h := r.nhnHeader(t)
		require.Equal(t, 403, h.ResultCode)
		require.False(t, h.IsSuccessful)
	}
	for _, p := range []string{"/", "/certmanager/v1.2/appkeys/" + testAppKey + "/certificates",
		cmPath("v1.3", "/"), cmPath("v1.3", "/a/b/files"), cmPath("v1.3", "/a/file"), "/oauth2/token"} {
		r := e.v13Path(tok, p)
		require.Equal(t, http.StatusNotFound, r.status, p)
		require.Equal(t, 404, r.nhnHeader(t).ResultCode)
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
	}
	r := e.do(e.newReq(context.Background(), http.MethodPost, cmPath("v1.3", ""), nil))
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	require.Equal(t, 405, r.nhnHeader(t).ResultCode)
}
