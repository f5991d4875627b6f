package emulator

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

type listItemV13 struct {
	CertificateID      int64    `json:"certificateId,omitempty"` // NHN's list has it since 2025; NoID leaves it out
	CertificateName    string   `json:"certificateName"`
	Authority          string   `json:"authority"`
	Domains            []string `json:"domains"`
	SignatureAlgorithm string   `json:"signatureAlgorithm"`
	FileCreationDate   string   `json:"fileCreationDate"`
	ExpirationDate     string   `json:"expirationDate"`
}

type listItemV11 struct {
	CertificateName    string `json:"certificateName"`
	Authority          string `json:"authority"`
	SignatureAlgorithm string `json:"signatureAlgorithm"`
	FileCreationDate   string `json:"fileCreationDate"`
	ExpirationDate     string `json:"expirationDate"`
}

type listBody struct {
	TotalCount  int `json:"totalCount"`
	TotalPage   int `json:"totalPage"`
	CurrentPage int `json:"currentPage"`
	PageSize    int `json:"pageSize"`
	Data        any `json:"data"`
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	pageSize, err := positiveParam(q, "pageSize", 10)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request: "+err.Error())
		return
	}
	pageNum, err := positiveParam(q, "pageNum", 1)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request: "+err.Error())
		return
	}
	all := false
	switch v := q.Get("all"); {
	case v == "" || strings.EqualFold(v, "false"):
	case strings.EqualFold(v, "true"):
		all = true
	default:
		writeError(w, http.StatusBadRequest, "Bad Request: all must be true or false")
		return
	}
	status := "UNEXPIRED"
	if v := q.Get("status"); v != "" {
		status = strings.ToUpper(v)
		if status != "ALL" && status != "EXPIRED" && status != "UNEXPIRED" {
			writeError(w, http.StatusBadRequest, "Bad Request: status must be ALL, EXPIRED or UNEXPIRED")
			return
		}
	}
	if !all && s.opts.MaxPageSize > 0 && pageSize > s.opts.MaxPageSize {
		pageSize = s.opts.MaxPageSize
	}
	start, end := 0, math.MaxInt
	if !all {
		if pageNum > math.MaxInt/pageSize {
			start = math.MaxInt // far past the end
		} else {
			start = (pageNum - 1) * pageSize
			end = start + pageSize
		}
	}

	today := s.today()
	var page []Certificate
	total := 0
	s.mu.Lock()
	for _, name := range s.sortedLocked() {
		if s.unlisted[name] {
			continue
		}
		c := &s.certs[name].cert
		expired := c.ExpirationDate != "" && c.ExpirationDate < today
		if (status == "EXPIRED" && !expired) || (status == "UNEXPIRED" && expired) {
			continue
		}
		if total >= start && total < end {
			cc := *c
			cc.Domains = append([]string(nil), c.Domains...)
			page = append(page, cc)
		}
		total++
	}
	s.mu.Unlock()

	body := listBody{TotalCount: total, PageSize: pageSize, CurrentPage: pageNum}
	if all {
		body.CurrentPage = 1
		if total > 0 {
			body.PageSize, body.TotalPage = total, 1
		}
	} else {
		body.TotalPage = (total + pageSize - 1) / pageSize
	}
	if rt.version == "v1.1" {
		items := make([]listItemV11, 0, len(page))
		for _, c := range page {
			items = append(items, listItemV11{c.Name, c.Authority, c.SignatureAlgorithm, c.FileCreationDate, c.ExpirationDate})
		}
		body.Data = items
	} else {
		items := make([]listItemV13, 0, len(page))
		for _, c := range page {
			d := c.Domains
			if d == nil {
				d = []string{}
			}
			id := c.ID
			if c.NoID {
				id = 0
			}
			items = append(items, listItemV13{id, c.Name, c.Authority, d, c.SignatureAlgorithm, c.FileCreationDate, c.ExpirationDate})
		}
		body.Data = items
	}
	writeJSON(w, http.StatusOK, struct {
		Header resultHeader `json:"header"`
		Body   listBody     `json:"body"`
	}{successHeader, body})
}

func positiveParam(q url.Values, name string, def int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s must be a positive integer", name)
	}
	return n, nil
}

// SetUnlisted makes every list leave out the given names while their files
// still download, as a truncated or glitching list would; no names ends it.
func (s *Server) SetUnlisted(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unlisted = make(map[string]bool, len(names))
	for _, n := range names {
		s.unlisted[n] = true
	}
}
