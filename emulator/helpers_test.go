package emulator

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

const (
	testAppKey = "test-app-key"
	testID     = "test-access-key-id"
	testSecret = "test-secret-access-key"
)

// testCA is shared by tests that do not care which CA signs (keeps them cheap).
var testCA = sync.OnceValues(func() (*CA, error) { return NewCA(1) })

func sharedTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := testCA()
	require.NoError(t, err)
	return ca
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	s     *Server
	ts    *testkit.Recorder // records the RequestURI of every request the server saw
	clock *fakeClock
}

func newEnv(t *testing.T, mod ...func(*Options)) *env {
	t.Helper()
	clock := &fakeClock{t: time.Now()}
	o := Options{AppKey: testAppKey, AccessKeyID: testID, SecretAccessKey: testSecret, Now: clock.Now}
	for _, m := range mod {
		m(&o)
	}
	e := &env{t: t, s: New(o), clock: clock}
	e.ts = testkit.NewRecorder(t, e.s)
	return e
}

// lastURI is the RequestURI of the last request the server saw, as sent.
func (e *env) lastURI() string {
	e.t.Helper()
	uris := e.ts.RequestURIs()
	require.NotEmpty(e.t, uris, "no request yet")
	return uris[len(uris)-1]
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// nhnHeader decodes the NHN "header" object of a JSON answer.
func (r resp) nhnHeader(t *testing.T) resultHeader {
	t.Helper()
	var m struct {
		Header *resultHeader `json:"header"`
	}
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	require.NotNil(t, m.Header, "no header in %s", r.body)
	return *m.Header
}

func (e *env) do(req *http.Request) resp {
	e.t.Helper()
	res, err := e.ts.Client().Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) newReq(ctx context.Context, method, path string, body io.Reader) *http.Request {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, e.ts.URL+path, body)
	require.NoError(e.t, err)
	return req
}

// sendJSON sends body as it is, as JSON, to path.
func (e *env) sendJSON(method, path, body string) resp {
	e.t.Helper()
	req := e.newReq(context.Background(), method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return e.do(req)
}

// tokenReq builds a token request with the given credentials and form.
func (e *env) tokenReq(id, secret, grant string) *http.Request {
	req := e.newReq(context.Background(), http.MethodPost, TokenPath,
		strings.NewReader(url.Values{"grant_type": {grant}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" || secret != "" {
		req.SetBasicAuth(id, secret)
	}
	return req
}

func (e *env) token() string {
	e.t.Helper()
	r := e.do(e.tokenReq(testID, testSecret, "client_credentials"))
	require.Equal(e.t, http.StatusOK, r.status, "token: %s", r.body)
	var tr tokenResponse
	require.NoError(e.t, json.Unmarshal(r.body, &tr))
	require.NotEmpty(e.t, tr.AccessToken)
	return tr.AccessToken
}

func cmPath(version, rest string) string {
	return "/certmanager/" + version + "/appkeys/" + testAppKey + "/certificates" + rest
}

// v13 GETs a v1.3 path ("" = list, "/name/files", "?query") with a token.
func (e *env) v13(tok, rest string) resp {
	e.t.Helper()
	req := e.newReq(context.Background(), http.MethodGet, cmPath("v1.3", rest), nil)
	if tok != "" {
		req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+tok)
	}
	return e.do(req)
}

// v13Path GETs any path with a v1.3 token.
func (e *env) v13Path(tok, path string) resp {
	req := e.newReq(context.Background(), http.MethodGet, path, nil)
	req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+tok)
	return e.do(req)
}

// v11 GETs a v1.1 path with the right key headers.
func (e *env) v11(rest string) resp {
	e.t.Helper()
	req := e.newReq(context.Background(), http.MethodGet, cmPath("v1.1", rest), nil)
	req.Header.Set("X-TC-AUTHENTICATION-ID", testID)
	req.Header.Set("X-TC-AUTHENTICATION-SECRET", testSecret)
	return e.do(req)
}

type listAnswer struct {
	Header resultHeader `json:"header"`
	Body   struct {
		TotalCount  int              `json:"totalCount"`
		TotalPage   int              `json:"totalPage"`
		CurrentPage int              `json:"currentPage"`
		PageSize    int              `json:"pageSize"`
		Data        []map[string]any `json:"data"`
	} `json:"body"`
}

func (r resp) list(t *testing.T) listAnswer {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "list: %s", r.body)
	var l listAnswer
	require.NoError(t, json.Unmarshal(r.body, &l), "body: %s", r.body)
	require.Equal(t, successHeader, l.Header)
	return l
}

func names(l listAnswer) []string {
	out := make([]string, 0, len(l.Body.Data))
	for _, d := range l.Body.Data {
		out = append(out, d["certificateName"].(string))
	}
	return out
}

// splitFile returns the leaf (the non-CA certificate), all certificates and
// the PEM of the key of a file.
func splitFile(t *testing.T, file []byte) (leaf *x509.Certificate, certs []*x509.Certificate, keyPEM []byte) {
	t.Helper()
	for _, b := range testkit.RequirePEMBlocks(t, file) {
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			require.NoError(t, err)
			certs = append(certs, c)
			if !c.IsCA {
				require.Nil(t, leaf, "two leaves")
				leaf = c
			}
			continue
		}
		require.Nil(t, keyPEM, "two keys")
		keyPEM = pem.EncodeToMemory(b)
	}
	require.NotNil(t, leaf, "no leaf")
	require.NotNil(t, keyPEM, "no key")
	return leaf, certs, keyPEM
}
