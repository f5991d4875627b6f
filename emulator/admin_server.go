package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// The admin API, served under /_emulator/ by Server.ServeHTTP (JSON in and
// out, never affected by faults or latency):
//
//	GET    /_emulator/health          {"status":"ok"}
//	GET    /_emulator/certs           {"certs":[AdminCert...]}
//	POST   /_emulator/certs           AddCertRequest -> AddCertResponse
//	DELETE /_emulator/certs?name=x    {"name":"x","removed":true}
//	POST   /_emulator/rotate?name=x   AddCertResponse (new serial, not_after)
//	POST   /_emulator/seed            {"prefix":"bulk","count":30} -> {"prefix":..,"count":..,"total":..}
//	POST   /_emulator/demo            SeedDemo
//	GET    /_emulator/fault           {"fault":Fault,"remaining":n}
//	PUT    /_emulator/fault           Fault -> {"fault":Fault,"remaining":n}
//	DELETE /_emulator/fault
//	GET    /_emulator/latency         {"delay":"200ms"}
//	PUT    /_emulator/latency         {"delay":"200ms"}
//	POST   /_emulator/tokens/revoke
//	GET    /_emulator/stats           Stats
//	DELETE /_emulator/stats           (reset) Stats
//
// Errors are {"error":"..."} with a 4xx status.
//
// Admin is the Go client for this API.

// maxSeed bounds one admin seed request.
const maxSeed = 1_000_000

// AddCertRequest asks the admin API to generate a chain and put it.
type AddCertRequest struct {
	Name    string  `json:"name"`               // certificate name, also the leaf's common name
	KeyType KeyType `json:"key_type,omitempty"` // default "ec"
	Expired bool    `json:"expired"`            // NotBefore now-100d, NotAfter now-10d (else now-1h .. now+90d)
	// ExpiresInDays > 0: NotAfter now + that many days (a certificate
	// about to expire, for expiry alerts).
	ExpiresInDays int `json:"expires_in_days,omitempty"`
	// Intermediates between the root and the leaf. In JSON, a missing field
	// means 1 and 0 (or a negative number) means none. In Go, 0 is left out
	// of the JSON and so means 1; use -1 for none (the root signs the leaf).
	// Certificates with the same count share the server's CA for it.
	Intermediates int      `json:"intermediates,omitempty"`
	IncludeRoot   bool     `json:"include_root"`
	Shuffle       bool     `json:"shuffle"`             // all blocks in random order
	KeyFirst      bool     `json:"key_first,omitempty"` // key block before the certificates
	DNSNames      []string `json:"dns_names,omitempty"` // default [name]
	FileName      string   `json:"file_name,omitempty"` // default name + ".pem"
	// KeyPassphrase, when set, encrypts the key in the file with it (kept
	// on rotation), as NHN holds a key uploaded with a passphrase;
	// KeyEncryption is "pkcs8" (default: PKCS#8 PBES2, AES-256-CBC) or
	// "legacy" (Proc-Type/DEK-Info, AES-256-CBC).
	KeyPassphrase string `json:"key_passphrase,omitempty"`
	KeyEncryption string `json:"key_encryption,omitempty"`
}

// AddCertResponse describes a generated certificate.
type AddCertResponse struct {
	Name      string    `json:"name"`
	Serial    string    `json:"serial"` // colon-separated lowercase hex, as Vault PKI writes it
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	KeyType   KeyType   `json:"key_type"`
	RootPEM   string    `json:"root_pem"` // the root the chain leads to
}

// RotateResponse describes a rotated certificate.
type RotateResponse = AddCertResponse

// AdminCert is one certificate as GET /_emulator/certs lists it.
type AdminCert struct {
	ID                 int64    `json:"certificate_id"` // NHN's certificateId (listed unless NoID)
	Name               string   `json:"name"`
	Authority          string   `json:"authority"`
	Domains            []string `json:"domains"`
	SignatureAlgorithm string   `json:"signature_algorithm"`
	FileCreationDate   string   `json:"file_creation_date"`
	ExpirationDate     string   `json:"expiration_date"`
	FileName           string   `json:"file_name"`
	HasFile            bool     `json:"has_file"`
	Serial             string   `json:"serial,omitempty"` // when the leaf exists already (Seed makes it on first download)
	KeyType            KeyType  `json:"key_type,omitempty"`
}

// SeedRequest asks the admin API to Seed.
type SeedRequest struct {
	Prefix string `json:"prefix"`
	Count  int    `json:"count"`
}

type faultState struct {
	Fault     Fault `json:"fault"`
	Remaining int   `json:"remaining"` // matching requests left when fault.count > 0
}

type latencyJSON struct {
	Delay json.RawMessage `json:"delay"`
}

func adminError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any, strict bool) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		adminError(w, http.StatusBadRequest, "invalid JSON body: %v", err)
		return false
	}
	return true
}

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, AdminPrefix)
	type handler map[string]func()
	routes := map[string]handler{
		"/health": {http.MethodGet: func() { writeJSON(w, http.StatusOK, map[string]string{"status": "ok"}) }},
		"/certs": {
			http.MethodGet:    func() { writeJSON(w, http.StatusOK, map[string]any{"certs": s.adminCerts()}) },
			http.MethodPost:   func() { s.adminAddCert(w, r) },
			http.MethodDelete: func() { s.adminRemove(w, r) },
		},
		"/rotate": {http.MethodPost: func() { s.adminRotate(w, r) }},
		"/seed":   {http.MethodPost: func() { s.adminSeed(w, r) }},
		"/demo": {http.MethodPost: func() {
			if err := s.SeedDemo(); err != nil {
				adminError(w, http.StatusInternalServerError, "%v", err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"total": len(s.Names())})
		}},
		"/fault": {
			http.MethodGet: func() { s.adminFaultState(w) },
			http.MethodPut: func() {
				var f Fault
				if !decodeBody(w, r, &f, false) {
					return
				}
				if err := f.Validate(); err != nil {
					adminError(w, http.StatusBadRequest, "%v", err)
					return
				}
				s.SetFault(f)
				s.adminFaultState(w)
			},
			http.MethodDelete: func() { s.ClearFault(); s.adminFaultState(w) },
		},
		"/latency": {
			http.MethodGet: func() { writeJSON(w, http.StatusOK, map[string]string{"delay": s.Latency().String()}) },
			http.MethodPut: func() {
				var l latencyJSON
				if !decodeBody(w, r, &l, true) {
					return
				}
				d, err := parseJSONDuration(l.Delay)
				if err != nil || d < 0 {
					adminError(w, http.StatusBadRequest, "delay must be a non-negative Go duration such as \"200ms\"")
					return
				}
				s.SetLatency(d)
				writeJSON(w, http.StatusOK, map[string]string{"delay": d.String()})
			},
		},
		"/tokens/revoke": {http.MethodPost: func() {
			s.RevokeTokens()
			writeJSON(w, http.StatusOK, map[string]bool{"revoked": true})
		}},
		"/stats": {
			http.MethodGet:    func() { writeJSON(w, http.StatusOK, s.Stats()) },
			http.MethodDelete: func() { s.ResetStats(); writeJSON(w, http.StatusOK, s.Stats()) },
		},
	}
	h, ok := routes[path]
	if !ok {
		adminError(w, http.StatusNotFound, "no admin endpoint %s", r.URL.Path)
		return
	}
	f, ok := h[r.Method]
	if !ok {
		methods := make([]string, 0, len(h))
		for m := range h {
			methods = append(methods, m)
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		adminError(w, http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path)
		return
	}
	f()
}

func (s *Server) adminFaultState(w http.ResponseWriter) {
	f, left := s.CurrentFault()
	writeJSON(w, http.StatusOK, faultState{Fault: f, Remaining: left})
}

func (s *Server) adminCerts() []AdminCert {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := s.sortedLocked()
	out := make([]AdminCert, 0, len(names))
	for _, n := range names {
		e := s.certs[n]
		c := AdminCert{
			ID:                 e.cert.ID,
			Name:               n,
			Authority:          e.cert.Authority,
			Domains:            append([]string{}, e.cert.Domains...),
			SignatureAlgorithm: e.cert.SignatureAlgorithm,
			FileCreationDate:   e.cert.FileCreationDate,
			ExpirationDate:     e.cert.ExpirationDate,
			FileName:           e.cert.FileName,
			HasFile:            len(e.cert.File) > 0 || e.lazy != nil,
		}
		if c.FileName == "" {
			c.FileName = n + ".pem"
		}
		if e.chain != nil {
			c.Serial = FormatSerial(e.chain.Leaf.SerialNumber)
			c.KeyType = e.chain.KeyType
		} else if e.lazy != nil {
			c.KeyType = EC
		}
		out = append(out, c)
	}
	return out
}

func validAdminName(n string) error {
	if n == "" {
		return errors.New("name is required")
	}
	if strings.IndexFunc(n, unicode.IsControl) >= 0 {
		return errors.New("name must not contain control characters")
	}
	return nil
}

func (s *Server) adminAddCert(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AddCertRequest
		Intermediates *int `json:"intermediates"` // shadows AddCertRequest.Intermediates
	}
	if !decodeBody(w, r, &req, true) {
		return
	}
	if err := validAdminName(req.Name); err != nil {
		adminError(w, http.StatusBadRequest, "%v", err)
		return
	}
	kt, err := ParseKeyType(string(req.KeyType))
	if err != nil {
		adminError(w, http.StatusBadRequest, "%v", err)
		return
	}
	enc, err := ParseKeyEncryption(req.KeyEncryption)
	if err != nil {
		adminError(w, http.StatusBadRequest, "%v", err)
		return
	}
	n := 1
	if req.Intermediates != nil {
		n = max(*req.Intermediates, 0)
	}
	if n > maxIntermediates {
		adminError(w, http.StatusBadRequest, "intermediates must be at most %d", maxIntermediates)
		return
	}
	ca, err := s.sharedCA(n)
	if err != nil {
		adminError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	now := s.now()
	nb, na := now.Add(-time.Hour), now.Add(90*day)
	switch {
	case req.Expired:
		nb, na = now.Add(-100*day), now.Add(-10*day)
	case req.ExpiresInDays > 0:
		na = now.Add(time.Duration(req.ExpiresInDays) * day)
	}
	ch, err := GenerateChain(ChainOptions{CommonName: req.Name, DNSNames: req.DNSNames, KeyType: kt, NotBefore: nb, NotAfter: na, CA: ca})
	if err != nil {
		adminError(w, http.StatusBadRequest, "%v", err)
		return
	}
	fo := FileOptions{IncludeRoot: req.IncludeRoot, KeyFirst: req.KeyFirst}
	if req.KeyPassphrase != "" {
		fo.KeyPassphrase, fo.KeyEncryption = req.KeyPassphrase, enc
	}
	if req.Shuffle {
		fo.Shuffle = mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	}
	s.mu.Lock()
	s.putChainLocked(req.Name, ch, fo, req.FileName)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, chainResponse(req.Name, ch))
}

func chainResponse(name string, ch *Chain) AddCertResponse {
	return AddCertResponse{
		Name:      name,
		Serial:    FormatSerial(ch.Leaf.SerialNumber),
		NotBefore: ch.Leaf.NotBefore.UTC(),
		NotAfter:  ch.Leaf.NotAfter.UTC(),
		KeyType:   ch.KeyType,
		RootPEM:   string(ch.CA.RootPEM),
	}
}

func (s *Server) adminRemove(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		adminError(w, http.StatusBadRequest, "query parameter name is required")
		return
	}
	s.mu.Lock()
	_, ok := s.certs[name]
	s.mu.Unlock()
	s.Remove(name)
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "removed": ok})
}

func (s *Server) adminRotate(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		adminError(w, http.StatusBadRequest, "query parameter name is required")
		return
	}
	ch, err := s.Rotate(name)
	if errors.Is(err, ErrNotFound) {
		adminError(w, http.StatusNotFound, "no certificate named %q", name)
		return
	} else if err != nil {
		adminError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, chainResponse(name, ch))
}

func (s *Server) adminSeed(w http.ResponseWriter, r *http.Request) {
	var req SeedRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	if req.Count < 0 || req.Count > maxSeed {
		adminError(w, http.StatusBadRequest, "count must be 0..%d", maxSeed)
		return
	}
	if strings.IndexFunc(req.Prefix, unicode.IsControl) >= 0 || strings.Contains(req.Prefix, "/") {
		adminError(w, http.StatusBadRequest, "prefix must not contain '/' or control characters")
		return
	}
	if err := s.Seed(req.Prefix, req.Count); err != nil {
		adminError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"prefix": req.Prefix, "count": req.Count, "total": len(s.Names())})
}
