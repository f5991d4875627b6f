package emulator

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFreeTextNames: since NHN's release of 2025-11-25 a name is free text.
// Each one is served under its percent-encoded path segment, decoded once,
// as an HTTP server decodes a path parameter: "%2F" and "%25" are part of
// the name, never a separator or a second round of decoding.
func TestFreeTextNames(t *testing.T) {
	e := newEnv(t)
	names := []string{
		"example.com (new)", "웹 서버 인증서", "100%", "50%2F50", "a?b=c", "a#b", "a/b",
		"( ) [ ] @ # % ? + , ; = ~ '", " leading and trailing ", "a..b", "...",
	}
	files := map[string][]byte{}
	for _, n := range names {
		ch, err := GenerateChain(ChainOptions{CommonName: "names.example.com", CA: sharedTestCA(t)})
		require.NoError(t, err)
		e.s.PutChain(n, ch, FileOptions{})
		files[n] = ch.PEMFile(FileOptions{})
	}
	tok := e.token()
	for _, n := range names {
		r := e.v13(tok, "/"+url.PathEscape(n)+"/files")
		require.Equal(t, http.StatusOK, r.status, "%q: %s", n, r.body)
		require.Equal(t, files[n], r.body, "%q", n)
		require.EqualValues(t, 1, e.s.Stats().FileCallsByName[n], "%q counted under its decoded name", n)
	}
	// Decoded once: "%252F" is the name "%2F", and "%2F" is '/' in a name.
	require.Equal(t, http.StatusOK, e.v13(tok, "/50%252F50/files").status)
	require.Equal(t, files["a/b"], e.v13(tok, "/a%2Fb/files").body)
	// An unencoded '/' is a separator: not a file path.
	require.Equal(t, http.StatusNotFound, e.v13(tok, "/a/b/files").status)

	r := e.v13(tok, "/"+url.PathEscape("웹 서버 인증서")+"/files")
	cd := r.header.Get("Content-Disposition")
	require.Equal(t, `attachment; filename="_ __ ___.pem"; filename*=UTF-8''`+url.PathEscape("웹 서버 인증서.pem"), cd)
	for i := 0; i < len(cd); i++ {
		require.Less(t, cd[i], byte(0x7f), "the header is ASCII")
	}

	listed := map[string]bool{}
	for _, d := range e.v13(tok, "?pageSize=100").list(t).Body.Data {
		listed[d["certificateName"].(string)] = true
	}
	for _, n := range names {
		require.True(t, listed[n], "%q listed", n)
	}
}

// TestDownloadByID: today's v1.3 lists certificateId and downloads by it;
// an unknown or malformed ID is NHN's 52009 with HTTP 404. A file replaced
// under the same name keeps its ID; a removed name's ID is not reused.
func TestDownloadByID(t *testing.T) {
	e := newEnv(t)
	ch, err := GenerateChain(ChainOptions{CommonName: "id.example.com", CA: sharedTestCA(t)})
	require.NoError(t, err)
	e.s.PutChain("id.example.com", ch, FileOptions{})
	e.s.PutChain("웹 서버 인증서", ch, FileOptions{IncludeRoot: true})
	tok := e.token()

	ids := map[string]int64{}
	for _, d := range e.v13(tok, "").list(t).Body.Data {
		id, ok := d["certificateId"].(float64)
		require.True(t, ok, "certificateId is a JSON number: %v", d)
		ids[d["certificateName"].(string)] = int64(id)
	}
	require.Len(t, ids, 2)
	require.NotEqual(t, ids["id.example.com"], ids["웹 서버 인증서"])

	byID := func(id string) resp { return e.v13(tok, "/"+id+"/certificate-files") }
	for name, id := range ids {
		r := byID(strconv.FormatInt(id, 10))
		require.Equal(t, http.StatusOK, r.status)
		want, _ := e.s.Get(name)
		require.Equal(t, want.File, r.body, name)
		require.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
		require.True(t, strings.HasPrefix(r.header.Get("Content-Disposition"), `attachment; filename="`))
	}
	require.EqualValues(t, 1, e.s.Stats().FileCallsByID[strconv.FormatInt(ids["id.example.com"], 10)])

	for _, bad := range []string{"999", "0", "-1", "abc", "id.example.com", "1.5"} {
		r := byID(bad)
		require.Equal(t, http.StatusNotFound, r.status, bad)
		require.Equal(t, resultHeader{ResultCode: 52009, ResultMessage: "Certificate id does not exist."}, r.nhnHeader(t), bad)
		require.Contains(t, string(r.body), `"body":{}`)
	}
	// v1.1 has no such call.
	require.Equal(t, http.StatusNotFound, e.v11("/1/certificate-files").status)

	// Rotation keeps the ID; remove and add again gives a new one.
	_, err = e.s.Rotate("id.example.com")
	require.NoError(t, err)
	c, _ := e.s.Get("id.example.com")
	require.Equal(t, ids["id.example.com"], c.ID)
	e.s.Remove("id.example.com")
	require.Equal(t, http.StatusNotFound, byID(strconv.FormatInt(ids["id.example.com"], 10)).status)
	e.s.PutChain("id.example.com", ch, FileOptions{})
	c, _ = e.s.Get("id.example.com")
	require.Greater(t, c.ID, ids["웹 서버 인증서"])

	// NoID: listed as an answer from before certificateId, not downloadable by ID.
	e.s.Put(Certificate{Name: "old.example.com", NoID: true, File: ch.PEMFile(FileOptions{}), ExpirationDate: "2999-01-01"})
	for _, d := range e.v13(tok, "").list(t).Body.Data {
		if d["certificateName"] == "old.example.com" {
			require.NotContains(t, d, "certificateId")
		}
	}
	old, _ := e.s.Get("old.example.com")
	require.Equal(t, http.StatusNotFound, byID(strconv.FormatInt(old.ID, 10)).status)
}
