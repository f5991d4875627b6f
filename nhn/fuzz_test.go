package nhn

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// The committed seed corpus lives in testdata/fuzz/FuzzListAnswer/.

// listPageJSON is one list answer as NHN v1.3 sends it.
func listPageJSON(page, pages int, names ...string) []byte {
	type entry struct {
		Name      string   `json:"certificateName"`
		Authority string   `json:"authority"`
		Domains   []string `json:"domains"`
		SigAlg    string   `json:"signatureAlgorithm"`
		Created   string   `json:"fileCreationDate"`
		Expires   string   `json:"expirationDate"`
	}
	data := make([]entry, 0, len(names))
	for _, n := range names {
		data = append(data, entry{n, "NHN", []string{n}, "SHA256withRSA", "2025-03-02", "2026-03-25"})
	}
	b, err := json.Marshal(map[string]any{
		"header": map[string]any{"resultCode": 0, "resultMessage": "success", "isSuccessful": true},
		"body": map[string]any{
			"totalCount": len(names) * pages, "totalPage": pages, "currentPage": page, "pageSize": 10, "data": data,
		},
	})
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzListAnswer(f *testing.F) {
	f.Add(listPageJSON(1, 2, "b.example.com", "*.example.com", "a.example.com"),
		listPageJSON(2, 2, "a.example.com", "c.example.com", "../etc", "a/b", ""))
	f.Add(listPageJSON(1, 1, "nhncloudservice.com"), []byte(nil))
	f.Add([]byte(`{"header":{"resultCode":0,"resultMessage":"success","isSuccessful":true},"body":{"totalCount":1,"totalPage":1,"currentPage":1,"pageSize":10,"data":[{"certificateName":"test.nhn.com","authority":"NHN","signatureAlgorithm":"SHA256withRSA","fileCreationDate":"2020-03-02","expirationDate":"2021-03-25"}]}}`),
		[]byte(`{"header":{"resultCode":0,"resultMessage":"success","isSuccessful":true},"body":{"totalCount":0,"totalPage":0,"currentPage":1,"pageSize":10,"data":[]}}`))
	f.Add([]byte(`{"header":{"resultCode":52000,"resultMessage":"Certificate name does not exist.","isSuccessful":false},"body":{}}`), []byte(`null`))
	f.Add([]byte(`{"header":{"isSuccessful":true},"body":{"totalPage":-1}}`), []byte(`{"header":{},"body":{"data":[null,{"certificateName":"x"}]}}`))
	f.Fuzz(func(t *testing.T, page1, page2 []byte) {
		var pages [][]Certificate
		for _, body := range [][]byte{page1, page2} {
			a, err := decodeListPage("listing certificates (page 1)", body)
			if err != nil {
				var ue *Error
				if !errors.As(err, &ue) {
					t.Fatalf("error is %T, want *Error: %v", err, err)
				}
				if a != nil {
					t.Fatal("an answer and an error")
				}
				if len(err.Error()) > 400 {
					t.Fatalf("error text is %d bytes long", len(err.Error()))
				}
				continue
			}
			if a.Header == nil || a.Body.TotalPage < 0 || a.Body.TotalCount < 0 || a.Body.PageSize < 0 {
				t.Fatalf("accepted answer %+v", a)
			}
			pages = append(pages, a.Body.Data)
		}
		merged := MergePages(pages)
		listed := map[string]bool{}
		for _, p := range pages {
			for _, c := range p {
				listed[c.Name] = true
			}
		}
		if len(merged) != len(listed) {
			t.Fatalf("merged %d names, want %d distinct ones", len(merged), len(listed))
		}
		for i, c := range merged {
			if !listed[c.Name] {
				t.Fatalf("merged name %q was not in the input", c.Name)
			}
			if i > 0 && merged[i-1].Name >= c.Name {
				t.Fatalf("names not sorted and unique: %q then %q", merged[i-1].Name, c.Name)
			}
		}
		if !slices.IsSortedFunc(merged, func(a, b Certificate) int { return strings.Compare(a.Name, b.Name) }) {
			t.Fatal("not sorted")
		}
	})
}
