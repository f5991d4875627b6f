package emulator

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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
		"certificateId":      float64(1),
		"certificateName":    "*.example.com",
		"authority":          CAOrganization,
		"domains":            []any{"*.example.com", "example.com"},
		"signatureAlgorithm": "SHA256withECDSA",
		"fileCreationDate":   e.clock.Now().UTC().Format("2006-01-02"),
		"expirationDate":     ch.Leaf.NotAfter.UTC().Format("2006-01-02"),
	}, item)
	require.Equal(t, map[string]any{
		"certificateId":      float64(2),
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
