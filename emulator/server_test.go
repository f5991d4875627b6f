package emulator

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
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

func (e *env) v13Path(tok, path string) resp {
	req := e.newReq(context.Background(), http.MethodGet, path, nil)
	req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+tok)
	return e.do(req)
}

func TestListPagination(t *testing.T) {
	e := newEnv(t)
	for i := 24; i >= 0; i-- { // put in reverse: the list must come out sorted
		e.s.Put(Certificate{Name: fmt.Sprintf("c%02d.example.com", i), ExpirationDate: "2999-12-31"})
	}
	tok := e.token()

	l := e.v13(tok, "").list(t) // defaults: pageSize 10, pageNum 1
	require.Equal(t, 25, l.Body.TotalCount)
	require.Equal(t, 3, l.Body.TotalPage)
	require.Equal(t, 1, l.Body.CurrentPage)
	require.Equal(t, 10, l.Body.PageSize)
	require.Len(t, l.Body.Data, 10)
	require.Equal(t, "c00.example.com", names(l)[0])

	l = e.v13(tok, "?pageSize=10&pageNum=3").list(t)
	require.Equal(t, []string{"c20.example.com", "c21.example.com", "c22.example.com", "c23.example.com", "c24.example.com"}, names(l))
	require.Equal(t, 3, l.Body.CurrentPage)

	l = e.v13(tok, "?pageSize=7&pageNum=2").list(t)
	require.Equal(t, 4, l.Body.TotalPage)
	require.Equal(t, 7, l.Body.PageSize)
	require.Equal(t, "c07.example.com", names(l)[0])

	// Past the end: empty data array (not null).
	r := e.v13(tok, "?pageNum=4")
	l = r.list(t)
	require.Empty(t, l.Body.Data)
	require.Equal(t, 25, l.Body.TotalCount)
	require.Equal(t, 4, l.Body.CurrentPage)
	require.Contains(t, string(r.body), `"data":[]`)
	require.Empty(t, e.v13(tok, "?pageNum=9223372036854775807").list(t).Body.Data)

	// all=true (case-insensitive): everything on one page.
	l = e.v13(tok, "?all=TRUE&pageSize=3&pageNum=2").list(t)
	require.Len(t, l.Body.Data, 25)
	require.Equal(t, 1, l.Body.TotalPage)
	require.Equal(t, 1, l.Body.CurrentPage)
	require.Equal(t, 25, l.Body.PageSize)
	require.Len(t, e.v13(tok, "?all=False").list(t).Body.Data, 10)

	// Invalid parameters: 400.
	for _, q := range []string{"?pageSize=0", "?pageSize=abc", "?pageNum=0", "?pageNum=-1", "?all=yes", "?status=valid"} {
		r := e.v13(tok, q)
		require.Equal(t, http.StatusBadRequest, r.status, q)
		require.Equal(t, 400, r.nhnHeader(t).ResultCode, q)
	}

	// MaxPageSize clamps, and body.pageSize says so.
	e2 := newEnv(t, func(o *Options) { o.MaxPageSize = 5 })
	for i := range 12 {
		e2.s.Put(Certificate{Name: fmt.Sprintf("m%02d", i)})
	}
	tok2 := e2.token()
	l = e2.v13(tok2, "?pageSize=100").list(t)
	require.Equal(t, 5, l.Body.PageSize)
	require.Equal(t, 3, l.Body.TotalPage)
	require.Len(t, l.Body.Data, 5)
	l = e2.v13(tok2, "?pageSize=3&pageNum=4").list(t)
	require.Equal(t, 3, l.Body.PageSize)
	require.Equal(t, []string{"m09", "m10", "m11"}, names(l))
	require.Len(t, e2.v13(tok2, "?all=true").list(t).Body.Data, 12, "all ignores MaxPageSize")

	// An empty store.
	e3 := newEnv(t)
	l = e3.v13(e3.token(), "?all=true").list(t)
	require.Equal(t, 0, l.Body.TotalCount)
	require.Equal(t, 0, l.Body.TotalPage)
	require.NotNil(t, l.Body.Data)
}

func TestListStatusFilter(t *testing.T) {
	e := newEnv(t)
	today := e.clock.Now().UTC()
	d := func(days int) string { return today.AddDate(0, 0, days).Format("2006-01-02") }
	e.s.Put(Certificate{Name: "old", ExpirationDate: d(-30)})
	e.s.Put(Certificate{Name: "yesterday", ExpirationDate: d(-1)})
	e.s.Put(Certificate{Name: "today", ExpirationDate: d(0)})
	e.s.Put(Certificate{Name: "later", ExpirationDate: d(40)})
	tok := e.token()
	q := func(status string) []string {
		return names(e.v13(tok, "?all=true&status="+status).list(t))
	}
	require.Equal(t, []string{"later", "today"}, names(e.v13(tok, "").list(t)), "default UNEXPIRED")
	require.Equal(t, []string{"later", "today"}, q("uNeXpIrEd"))
	require.Equal(t, []string{"old", "yesterday"}, q("expired"))
	require.Equal(t, []string{"later", "old", "today", "yesterday"}, q("All"))
	require.Equal(t, []string{"later", "old", "today", "yesterday"}, names(e.v11("?all=true&status=ALL").list(t)))

	// Time moves on: "today" expires tomorrow.
	e.clock.Advance(24 * time.Hour)
	tok = e.token() // the old one expired with the day
	require.Equal(t, []string{"later"}, q("UNEXPIRED"))
	require.Equal(t, 3, e.v13(tok, "?status=EXPIRED").list(t).Body.TotalCount)

	r := e.v13(tok, "?status=bogus")
	require.Equal(t, http.StatusBadRequest, r.status)
	require.False(t, r.nhnHeader(t).IsSuccessful)
}

func TestListItemsByVersion(t *testing.T) {
	e := newEnv(t)
	ch, err := GenerateChain(ChainOptions{CommonName: "*.example.com", DNSNames: []string{"*.example.com", "example.com"}, CA: sharedTestCA(t)})
	require.NoError(t, err)
	e.s.PutChain("*.example.com", ch, FileOptions{})
	e.s.Put(Certificate{Name: "nodomains.example.com", Authority: "Let's Encrypt", SignatureAlgorithm: "SHA256withRSA",
		FileCreationDate: "2025-03-02", ExpirationDate: "2999-03-25"})

	l13 := e.v13(e.token(), "").list(t)
	require.Len(t, l13.Body.Data, 2)
	item := l13.Body.Data[0]
	require.Equal(t, map[string]any{
		"certificateName":    "*.example.com",
		"authority":          CAOrganization,
		"domains":            []any{"*.example.com", "example.com"},
		"signatureAlgorithm": "SHA256withECDSA",
		"fileCreationDate":   e.clock.Now().UTC().Format("2006-01-02"),
		"expirationDate":     ch.Leaf.NotAfter.UTC().Format("2006-01-02"),
	}, item)
	require.Equal(t, map[string]any{
		"certificateName":    "nodomains.example.com",
		"authority":          "Let's Encrypt",
		"domains":            []any{},
		"signatureAlgorithm": "SHA256withRSA",
		"fileCreationDate":   "2025-03-02",
		"expirationDate":     "2999-03-25",
	}, l13.Body.Data[1])

	r11 := e.v11("")
	l11 := r11.list(t)
	require.Len(t, l11.Body.Data, 2)
	for _, it := range l11.Body.Data {
		require.NotContains(t, it, "domains")
		require.Len(t, it, 5)
	}
	require.NotContains(t, string(r11.body), `"domains"`)
	// Exact key order of the documented shape.
	require.True(t, strings.HasPrefix(string(r11.body),
		`{"header":{"resultCode":0,"resultMessage":"SUCCESS","isSuccessful":true},"body":{"totalCount":2,"totalPage":1,"currentPage":1,"pageSize":10,"data":[{"certificateName":"*.example.com","authority":`), "%s", r11.body)
}

func TestFileDownload(t *testing.T) {
	e := newEnv(t)
	ch, err := GenerateChain(ChainOptions{CommonName: "www.example.com", CA: sharedTestCA(t)})
	require.NoError(t, err)
	e.s.PutChain("www.example.com", ch, FileOptions{})
	e.s.Put(Certificate{Name: "custom.example.com", File: []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), FileName: `we"ird.pem`})
	e.s.Put(Certificate{Name: "nofile.example.com", ExpirationDate: "2999-01-01"})
	tok := e.token()

	for _, r := range []resp{e.v13(tok, "/www.example.com/files"), e.v11("/www.example.com/files")} {
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
		require.Equal(t, `attachment; filename="www.example.com.pem"`, r.header.Get("Content-Disposition"))
		require.Equal(t, ch.PEMFile(FileOptions{}), r.body)
		leaf, certs, key := splitFile(t, r.body)
		require.Equal(t, ch.Leaf.Raw, leaf.Raw)
		require.Len(t, certs, 2)
		testkit.RequireKeyPEMMatches(t, key, leaf)
	}
	r := e.v13(tok, "/custom.example.com/files")
	require.Equal(t, `attachment; filename="we\"ird.pem"`, r.header.Get("Content-Disposition"))

	// 52000 and 52001: HTTP 200, JSON, exact body.
	r = e.v13(tok, "/missing.example.com/files")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.JSONEq(t, `{"header":{"resultCode":52000,"resultMessage":"Certificate name does not exist.","isSuccessful":false},"body":{}}`, string(r.body))
	r = e.v11("/nofile.example.com/files")
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"header":{"resultCode":52001,"resultMessage":"Certificate file does not exist.","isSuccessful":false},"body":{}}`, string(r.body))

	st := e.s.Stats()
	require.EqualValues(t, 5, st.FileCalls)
	require.Equal(t, map[string]int64{"www.example.com": 2, "custom.example.com": 1, "missing.example.com": 1, "nofile.example.com": 1}, st.FileCallsByName)

	// Get returns copies.
	c, ok := e.s.Get("www.example.com")
	require.True(t, ok)
	c.File[0] = 'X'
	c2, _ := e.s.Get("www.example.com")
	require.Equal(t, byte('-'), c2.File[0])
	e.s.Remove("www.example.com")
	_, ok = e.s.Get("www.example.com")
	require.False(t, ok)
	require.Equal(t, 52000, e.v13(tok, "/www.example.com/files").nhnHeader(t).ResultCode)
}

func TestWildcardNames(t *testing.T) {
	e := newEnv(t)
	ch, err := GenerateChain(ChainOptions{CommonName: "*.example.com", CA: sharedTestCA(t)})
	require.NoError(t, err)
	e.s.PutChain("*.example.com", ch, FileOptions{})
	tok := e.token()

	r := e.v13(tok, "/*.example.com/files")
	require.Contains(t, e.lastURI(), "/*.example.com/files", "sent raw")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, ch.PEMFile(FileOptions{}), r.body)
	require.Equal(t, `attachment; filename="*.example.com.pem"`, r.header.Get("Content-Disposition"))

	r = e.v13(tok, "/%2A.example.com/files")
	require.Contains(t, e.lastURI(), "/%2A.example.com/files", "sent encoded")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, ch.PEMFile(FileOptions{}), r.body)

	r = e.v11("/%2a.example.com/files")
	require.Equal(t, http.StatusOK, r.status)
	require.EqualValues(t, 3, e.s.Stats().FileCallsByName["*.example.com"])

	// An encoded slash is part of the name, which does not exist.
	require.Equal(t, 52000, e.v13(tok, "/a%2Fb/files").nhnHeader(t).ResultCode)
}

func TestRotate(t *testing.T) {
	e := newEnv(t)
	ca := sharedTestCA(t)
	ch, err := GenerateChain(ChainOptions{CommonName: "r.example.com", DNSNames: []string{"r.example.com", "s.example.com"}, KeyType: ECPKCS8, CA: ca,
		NotBefore: time.Now().Add(-100 * 24 * time.Hour), NotAfter: time.Now().Add(-10 * 24 * time.Hour)})
	require.NoError(t, err)
	e.s.PutChain("r.example.com", ch, FileOptions{IncludeRoot: true})
	tok := e.token()
	old := e.v13(tok, "/r.example.com/files").body

	e.clock.Advance(48 * time.Hour) // "today" moves
	nc, err := e.s.Rotate("r.example.com")
	require.NoError(t, err)
	require.NotEqual(t, ch.Leaf.SerialNumber, nc.Leaf.SerialNumber)
	require.False(t, nc.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(ch.Key.Public()), "new key")
	require.Equal(t, ch.Leaf.DNSNames, nc.Leaf.DNSNames)
	require.Equal(t, "r.example.com", nc.Leaf.Subject.CommonName)
	require.Equal(t, ECPKCS8, nc.KeyType)
	require.Same(t, ca, nc.CA)
	require.NoError(t, nc.Leaf.CheckSignatureFrom(ca.Intermediates[0]))
	require.Equal(t, 90*24*time.Hour, nc.Leaf.NotAfter.Sub(nc.Leaf.NotBefore), "same validity length")

	tok = e.token() // the old one expired with the clock
	body := e.v13(tok, "/r.example.com/files").body
	require.NotEqual(t, old, body)
	leaf, certs, key := splitFile(t, body)
	require.Equal(t, nc.Leaf.Raw, leaf.Raw)
	require.Len(t, certs, 3, "same file layout (root included)")
	testkit.RequireKeyPEMMatches(t, key, leaf)
	c, _ := e.s.Get("r.example.com")
	require.Equal(t, e.clock.Now().UTC().Format("2006-01-02"), c.FileCreationDate)
	require.Equal(t, nc.Leaf.NotAfter.UTC().Format("2006-01-02"), c.ExpirationDate)

	// A file put with Put: rotated from what the file says.
	e.s.Put(Certificate{Name: "plain", File: ch.PEMFile(FileOptions{KeyFirst: true}), FileName: "plain.crt"})
	pc, err := e.s.Rotate("plain")
	require.NoError(t, err)
	require.Equal(t, ECPKCS8, pc.KeyType)
	require.Equal(t, ch.Leaf.DNSNames, pc.Leaf.DNSNames)
	pcert, _ := e.s.Get("plain")
	require.Equal(t, "plain.crt", pcert.FileName)

	_, err = e.s.Rotate("nope")
	require.True(t, errors.Is(err, ErrNotFound))
}

// TestSeedListed checks what Seed(10000) makes; how long it takes is
// BenchmarkSeed10000's business (a wall-clock bound here would trip on a
// loaded machine under -race).
func TestSeedListed(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.s.Seed("bulk", 10000))

	tok := e.token()
	l := e.v13(tok, "?all=true").list(t)
	require.Equal(t, 10000, l.Body.TotalCount)
	require.Len(t, l.Body.Data, 10000)
	require.Equal(t, "bulk00000.example.com", l.Body.Data[0]["certificateName"])
	require.Equal(t, "bulk09999.example.com", l.Body.Data[9999]["certificateName"])
	a, b := l.Body.Data[1], l.Body.Data[2]
	require.NotEqual(t, a["expirationDate"], b["expirationDate"])
	require.NotEqual(t, a["fileCreationDate"], b["fileCreationDate"])
	require.Equal(t, []any{"bulk00001.example.com"}, a["domains"])
	require.Equal(t, 1000, e.v13(tok, "?pageSize=10&pageNum=7").list(t).Body.TotalPage)

	// Leaves are made on first download, stable afterwards, sharing one key.
	f1 := e.v13(tok, "/bulk00042.example.com/files").body
	leaf1, _, key1 := splitFile(t, f1)
	require.Equal(t, "bulk00042.example.com", leaf1.Subject.CommonName)
	require.Equal(t, []string{"bulk00042.example.com"}, leaf1.DNSNames)
	testkit.RequireKeyPEMMatches(t, key1, leaf1)
	require.Equal(t, l.Body.Data[42]["expirationDate"], leaf1.NotAfter.UTC().Format("2006-01-02"))
	require.Equal(t, f1, e.v13(tok, "/bulk00042.example.com/files").body)
	leaf2, _, key2 := splitFile(t, e.v11("/bulk00043.example.com/files").body)
	require.NotEqual(t, leaf1.SerialNumber, leaf2.SerialNumber)
	require.Equal(t, key1, key2)

	// Rotating a seeded certificate gives it its own key.
	nc, err := e.s.Rotate("bulk00043.example.com")
	require.NoError(t, err)
	require.NotEqual(t, key2, nc.KeyPEM)

	require.Error(t, e.s.Seed("x", -1))
}

// BenchmarkSeed10000 reports how long Seed(10000) takes on a fresh server,
// including making the shared CA and key on first use: what a demo or a test
// pays for a 10,000-certificate store (leaves are made later, on first
// download). TestSeedListed checks what it makes.
func BenchmarkSeed10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s := New(Options{})
		if err := s.Seed("bulk", 10000); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSeedDemo(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.s.SeedDemo())
	tok := e.token()
	require.Equal(t, []string{"*.example.com", "api.example.com", "ed25519.example.com", "example.com"}, names(e.v13(tok, "").list(t)))
	require.Equal(t, []string{"expired.example.com"}, names(e.v13(tok, "?status=expired").list(t)))

	ca, err := e.s.SharedCA(1)
	require.NoError(t, err)
	wantKey := map[string]string{
		"example.com": "RSA PRIVATE KEY", "*.example.com": "EC PRIVATE KEY", "api.example.com": "PRIVATE KEY",
		"ed25519.example.com": "PRIVATE KEY", "expired.example.com": "EC PRIVATE KEY",
	}
	for name, keyBlock := range wantKey {
		body := e.v13(tok, "/"+name+"/files").body
		leaf, certs, key := splitFile(t, body)
		testkit.RequireKeyPEMMatches(t, key, leaf)
		require.Contains(t, string(key), "BEGIN "+keyBlock+"-----", name)
		require.NoError(t, leaf.CheckSignatureFrom(ca.Intermediates[0]), name)
		switch name {
		case "example.com":
			blocks := testkit.RequirePEMBlocks(t, body)
			require.Equal(t, "CERTIFICATE", blocks[0].Type)
			require.NotEqual(t, leaf.Raw, blocks[0].Bytes, "shuffled: the leaf is not first")
			require.Equal(t, "CERTIFICATE", blocks[2].Type, "shuffled: the key is not last")
		case "api.example.com":
			require.Len(t, certs, 3, "root included")
		case "*.example.com":
			require.Equal(t, []string{"*.example.com", "example.com"}, leaf.DNSNames)
		case "expired.example.com":
			require.True(t, leaf.NotAfter.Before(time.Now().Add(-9*24*time.Hour)))
		default:
			require.Len(t, certs, 2)
		}
	}
	var m map[string]any
	l := e.v13(tok, "?status=all&all=true")
	require.NoError(t, json.Unmarshal(l.body, &m))
	require.Equal(t, float64(5), m["body"].(map[string]any)["totalCount"])
}

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
