package emulator

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

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
