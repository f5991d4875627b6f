package emulator

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Paths served by the emulator.
const (
	TokenPath   = "/oauth2/token/create"
	AdminPrefix = "/_emulator"
)

const (
	dateLayout      = "2006-01-02"
	defaultTokenTTL = 24 * time.Hour
	minTokenTTL     = 60 * time.Second
	maxTokenTTL     = 86400 * time.Second
	day             = 24 * time.Hour
	hugeSize        = 1 << 20
)

// ErrNotFound is returned (wrapped) for a certificate name the emulator does
// not hold.
var ErrNotFound = errors.New("emulator: certificate not found")

// Options configures a Server.
type Options struct {
	AppKey          string        // required on every certmanager path; others get HTTP 403
	AccessKeyID     string        // token service Basic user; v1.1 X-TC-AUTHENTICATION-ID
	SecretAccessKey string        // token service Basic password; v1.1 X-TC-AUTHENTICATION-SECRET
	TokenTTL        time.Duration // expires_in of issued tokens; default 24h; clamped to 60s..86400s, whole seconds
	MaxPageSize     int           // 0 = no cap; otherwise pageSize above it is clamped (body.pageSize reports what was used)
	Now             func() time.Time
	// Now defaults to time.Now; it is used for token expiry, the
	// expired/unexpired status filter, "today" and generated validity periods.
}

// Certificate is one certificate as Certificate Manager holds it: list
// metadata and the downloadable file.
type Certificate struct {
	Name               string
	Authority          string   // e.g. "NHN", "Let's Encrypt"
	Domains            []string // listed in v1.3 ("domains"); v1.1 lists have no such field
	SignatureAlgorithm string   // e.g. "SHA256withRSA", "SHA256withECDSA"
	FileCreationDate   string   // "YYYY-MM-DD"
	ExpirationDate     string   // "YYYY-MM-DD"
	File               []byte   // nil or empty => download answers 52001
	FileName           string   // Content-Disposition filename; default Name+".pem"
}

// Stats counts what the emulator was asked.
type Stats struct {
	TokenIssued     int64            `json:"token_issued"`
	TokenDenied     int64            `json:"token_denied"`       // bad credentials at the token service
	ListCalls       int64            `json:"list_calls"`         // certmanager list requests that reached the handler (even when a fault answered)
	FileCalls       int64            `json:"file_calls"`         // certmanager file requests that reached the handler (even when a fault answered)
	FileCallsByName map[string]int64 `json:"file_calls_by_name"` // FileCalls per requested (decoded) name
	AuthRejected    int64            `json:"auth_rejected"`      // certmanager requests refused for auth (token, key headers, unknown appKey)
}

type entry struct {
	cert  Certificate
	chain *Chain      // set when the emulator knows the chain (PutChain, Rotate, generated)
	fo    FileOptions // how chain was written to cert.File
	lazy  *lazyLeaf   // set for Seed entries until their file is first needed
}

type lazyLeaf struct {
	ca        *CA
	key       crypto.Signer
	keyPEM    []byte
	notBefore time.Time
	notAfter  time.Time
}

type tokenInfo struct {
	expires time.Time
	revoked bool
}

// Server is the emulator. Its zero value is not usable; call New. It is safe
// for concurrent use.
type Server struct {
	opts Options

	mu        sync.Mutex
	certs     map[string]*entry
	sorted    []string // sorted names; nil when stale
	tokens    map[string]*tokenInfo
	fault     Fault
	faultLeft int
	latency   time.Duration
	stats     Stats

	caMu       sync.Mutex // guards the lazily made shared material below
	cas        map[int]*CA
	seedKey    crypto.Signer
	seedKeyPEM []byte
	otherKeys  map[KeyType][]byte
}

// New makes a Server with no certificates.
func New(o Options) *Server {
	if o.TokenTTL == 0 {
		o.TokenTTL = defaultTokenTTL
	}
	o.TokenTTL = min(max(o.TokenTTL.Truncate(time.Second), minTokenTTL), maxTokenTTL)
	if o.MaxPageSize < 0 {
		o.MaxPageSize = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{
		opts:      o,
		certs:     map[string]*entry{},
		tokens:    map[string]*tokenInfo{},
		stats:     Stats{FileCallsByName: map[string]int64{}},
		cas:       map[int]*CA{},
		otherKeys: map[KeyType][]byte{},
	}
}

// Options returns the (defaulted) options the server runs with.
func (s *Server) Options() Options { return s.opts }

func (s *Server) now() time.Time { return s.opts.Now() }

func (s *Server) today() string { return s.now().UTC().Format(dateLayout) }

// ---------------------------------------------------------------------------
// Certificate store

// Put adds or replaces a certificate, by name.
func (s *Server) Put(c Certificate) {
	c.Domains = append([]string(nil), c.Domains...)
	if c.File != nil {
		c.File = append([]byte(nil), c.File...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.storeLocked(&entry{cert: c})
}

func (s *Server) storeLocked(e *entry) {
	if _, ok := s.certs[e.cert.Name]; !ok {
		s.sorted = nil
	}
	s.certs[e.cert.Name] = e
}

// PutChain puts a certificate whose file is ch.PEMFile(fo) and whose metadata
// comes from the chain: authority from the leaf's issuer (organization, else
// common name), domains from its DNS names, signature algorithm and
// expiration date from the leaf, file creation date today.
func (s *Server) PutChain(name string, ch *Chain, fo FileOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putChainLocked(name, ch, fo, "")
}

func (s *Server) putChainLocked(name string, ch *Chain, fo FileOptions, fileName string) {
	s.storeLocked(&entry{
		cert: Certificate{
			Name:               name,
			Authority:          authorityOf(ch.Leaf),
			Domains:            append([]string(nil), ch.Leaf.DNSNames...),
			SignatureAlgorithm: signatureAlgorithmName(ch.Leaf.SignatureAlgorithm),
			FileCreationDate:   s.today(),
			ExpirationDate:     ch.Leaf.NotAfter.UTC().Format(dateLayout),
			File:               ch.PEMFile(fo),
			FileName:           fileName,
		},
		chain: ch,
		fo:    fo,
	})
}

// Remove deletes a certificate; unknown names are ignored.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.certs[name]; ok {
		delete(s.certs, name)
		s.sorted = nil
	}
}

// Get returns a copy of a certificate (making the file of a Seed entry if it
// was not made yet).
func (s *Server) Get(name string) (Certificate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.certs[name]
	if !ok {
		return Certificate{}, false
	}
	s.materializeLocked(e)
	c := e.cert
	c.Domains = append([]string(nil), c.Domains...)
	if c.File != nil {
		c.File = append([]byte(nil), c.File...)
	}
	return c, true
}

// Chain returns the chain behind a certificate, when the emulator knows it
// (PutChain, Rotate, Seed, SeedDemo, the admin API).
func (s *Server) Chain(name string) (*Chain, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.certs[name]
	if !ok {
		return nil, false
	}
	s.materializeLocked(e)
	return e.chain, e.chain != nil
}

// Names returns every certificate name, sorted.
func (s *Server) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sortedLocked()...)
}

func (s *Server) sortedLocked() []string {
	if s.sorted == nil {
		s.sorted = make([]string, 0, len(s.certs))
		for n := range s.certs {
			s.sorted = append(s.sorted, n)
		}
		sort.Strings(s.sorted)
	}
	return s.sorted
}

// materializeLocked makes the leaf of a Seed entry.
func (s *Server) materializeLocked(e *entry) {
	l := e.lazy
	if l == nil {
		return
	}
	ch, err := issueChain(ChainOptions{
		CommonName: e.cert.Name,
		DNSNames:   []string{e.cert.Name},
		KeyType:    EC,
		NotBefore:  l.notBefore,
		NotAfter:   l.notAfter,
		CA:         l.ca,
	}, l.key, l.keyPEM)
	if err != nil {
		return // left without a file: downloads answer 52001
	}
	e.lazy, e.chain, e.fo = nil, ch, FileOptions{}
	e.cert.File = ch.PEMFile(e.fo)
}

// sharedCA returns the server's CA with n intermediates, made on first use.
func (s *Server) sharedCA(n int) (*CA, error) {
	s.caMu.Lock()
	defer s.caMu.Unlock()
	if ca := s.cas[n]; ca != nil {
		return ca, nil
	}
	ca, err := NewCA(n)
	if err != nil {
		return nil, err
	}
	s.cas[n] = ca
	return ca, nil
}

// SharedCA returns the CA (with n intermediates) the server uses for
// certificates it generates itself, making it on first use. The demo set,
// Seed and admin-added certificates with n intermediates all chain to it.
func (s *Server) SharedCA(n int) (*CA, error) { return s.sharedCA(n) }

func (s *Server) seedKeyPair() (crypto.Signer, []byte, error) {
	s.caMu.Lock()
	defer s.caMu.Unlock()
	if s.seedKey == nil {
		k, p, err := GenerateKey(EC)
		if err != nil {
			return nil, nil, err
		}
		s.seedKey, s.seedKeyPEM = k, p
	}
	return s.seedKey, s.seedKeyPEM, nil
}

// otherKeyPEM returns a key of type k that belongs to no certificate (for the
// mismatch fault), made once per type.
func (s *Server) otherKeyPEM(k KeyType) []byte {
	s.caMu.Lock()
	defer s.caMu.Unlock()
	if p := s.otherKeys[k]; p != nil {
		return p
	}
	_, p, err := GenerateKey(k)
	if err != nil {
		return nil
	}
	s.otherKeys[k] = p
	return p
}

// Seed adds n cheap certificates named fmt.Sprintf("%s%05d.example.com",
// prefix, i), i = 0..n-1, all unexpired, sharing one CA and one EC key. Their
// metadata differs per name (domains, creation and expiration dates); each
// leaf is made on its first download.
func (s *Server) Seed(prefix string, n int) error {
	if n < 0 {
		return fmt.Errorf("emulator: seed count must not be negative, got %d", n)
	}
	if n == 0 {
		return nil
	}
	ca, err := s.sharedCA(1)
	if err != nil {
		return err
	}
	key, keyPEM, err := s.seedKeyPair()
	if err != nil {
		return err
	}
	issuer, _ := ca.issuer()
	authority := CAOrganization
	if len(issuer.Subject.Organization) > 0 {
		authority = issuer.Subject.Organization[0]
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s%05d.example.com", prefix, i)
		created := now.Add(-time.Duration(i%60) * day)
		na := now.Add(time.Duration(30+i%700) * day)
		s.storeLocked(&entry{
			cert: Certificate{
				Name:               name,
				Authority:          authority,
				Domains:            []string{name},
				SignatureAlgorithm: "SHA256withECDSA", // CA keys are P-256
				FileCreationDate:   created.UTC().Format(dateLayout),
				ExpirationDate:     na.UTC().Format(dateLayout),
			},
			lazy: &lazyLeaf{ca: ca, key: key, keyPEM: keyPEM, notBefore: created.Add(-time.Hour), notAfter: na},
		})
	}
	return nil
}

// SeedDemo puts the demo set, all from the server's shared CA with one
// intermediate:
//
//   - example.com: RSA, PKCS#1 key, blocks shuffled
//   - *.example.com: EC, DNS names *.example.com and example.com
//   - api.example.com: RSA, PKCS#8 key, root included
//   - ed25519.example.com: Ed25519
//   - expired.example.com: EC, expired 10 days ago
func (s *Server) SeedDemo() error {
	ca, err := s.sharedCA(1)
	if err != nil {
		return err
	}
	now := s.now()
	nb, na := now.Add(-time.Hour), now.Add(90*day)
	specs := []struct {
		name   string
		kt     KeyType
		dns    []string
		fo     FileOptions
		nb, na time.Time
	}{
		// A fixed seed whose first permutation of the 3 blocks is
		// intermediate, key, leaf (later rotations continue the sequence).
		{"example.com", RSA, nil, FileOptions{Shuffle: mrand.New(mrand.NewPCG(2, 2))}, nb, na},
		{"*.example.com", EC, []string{"*.example.com", "example.com"}, FileOptions{}, nb, na},
		{"api.example.com", RSAPKCS8, nil, FileOptions{IncludeRoot: true}, nb, na},
		{"ed25519.example.com", Ed25519, nil, FileOptions{}, nb, na},
		{"expired.example.com", EC, nil, FileOptions{}, now.Add(-100 * day), now.Add(-10 * day)},
	}
	chains := make([]*Chain, len(specs))
	for i, sp := range specs {
		ch, err := GenerateChain(ChainOptions{CommonName: sp.name, DNSNames: sp.dns, KeyType: sp.kt, NotBefore: sp.nb, NotAfter: sp.na, CA: ca})
		if err != nil {
			return fmt.Errorf("emulator: demo certificate %s: %w", sp.name, err)
		}
		chains[i] = ch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, sp := range specs {
		s.putChainLocked(sp.name, chains[i], sp.fo, "")
	}
	return nil
}

// Rotate regenerates the named certificate with a new key and serial: same
// common name, DNS names and key type, same CA if the emulator made it (else
// the server's shared CA), a validity period of the same length starting an
// hour ago, file creation date today, same file layout and file name.
func (s *Server) Rotate(name string) (*Chain, error) {
	s.mu.Lock()
	e, ok := s.certs[name]
	if !ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	o, fo := rotationSpec(e)
	s.mu.Unlock()

	validity := o.NotAfter.Sub(o.NotBefore)
	if validity <= 0 {
		validity = 90 * day
	}
	if !o.CA.canSign() {
		ca, err := s.sharedCA(1)
		if err != nil {
			return nil, err
		}
		o.CA = ca
	}
	o.NotBefore = s.now().Add(-time.Hour)
	o.NotAfter = o.NotBefore.Add(validity)
	ch, err := GenerateChain(o)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok = s.certs[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	s.putChainLocked(name, ch, fo, e.cert.FileName)
	return ch, nil
}

// rotationSpec works out how to regenerate an entry (its CA may be nil).
func rotationSpec(e *entry) (ChainOptions, FileOptions) {
	switch {
	case e.chain != nil:
		l := e.chain.Leaf
		return ChainOptions{
			CommonName: l.Subject.CommonName, DNSNames: append([]string(nil), l.DNSNames...),
			KeyType: e.chain.KeyType, NotBefore: l.NotBefore, NotAfter: l.NotAfter, CA: e.chain.CA,
		}, e.fo
	case e.lazy != nil:
		return ChainOptions{
			CommonName: e.cert.Name, DNSNames: []string{e.cert.Name}, KeyType: EC,
			NotBefore: e.lazy.notBefore, NotAfter: e.lazy.notAfter, CA: e.lazy.ca,
		}, FileOptions{}
	}
	// A file put with Put: read the leaf and key type from it.
	o := ChainOptions{CommonName: e.cert.Name, KeyType: EC}
	leaf, kt := parseFile(e.cert.File)
	if leaf != nil {
		if leaf.Subject.CommonName != "" {
			o.CommonName = leaf.Subject.CommonName
		}
		o.DNSNames = append([]string(nil), leaf.DNSNames...)
		o.NotBefore, o.NotAfter = leaf.NotBefore, leaf.NotAfter
	}
	if kt != "" {
		o.KeyType = kt
	}
	if len(o.DNSNames) == 0 {
		o.DNSNames = []string{o.CommonName}
	}
	return o, FileOptions{}
}

// parseFile finds the leaf (first non-CA certificate, else the first one) and
// the key type of a PEM file; either may be missing.
func parseFile(file []byte) (*x509.Certificate, KeyType) {
	var first, leaf *x509.Certificate
	var kt KeyType
	for rest := file; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				continue
			}
			if first == nil {
				first = c
			}
			if leaf == nil && !c.IsCA {
				leaf = c
			}
		} else if kt == "" {
			if k, ok := keyTypeOfPEM(b); ok {
				kt = k
			}
		}
	}
	if leaf == nil {
		leaf = first
	}
	return leaf, kt
}

// ---------------------------------------------------------------------------
// Faults, latency, tokens, stats

// SetFault injects a fault (replacing any other); see Fault.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault, s.faultLeft = f, f.Count
}

// ClearFault removes the fault.
func (s *Server) ClearFault() { s.SetFault(Fault{}) }

// CurrentFault returns the fault and, when its Count is positive, how many
// matching requests it still applies to.
func (s *Server) CurrentFault() (Fault, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault, s.faultLeft
}

// SetLatency adds d before answering every non-admin request (a request whose
// context ends meanwhile is dropped unanswered).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = max(d, 0)
}

// Latency returns the latency set by SetLatency.
func (s *Server) Latency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency
}

// RevokeTokens makes every token issued so far rejected from now on.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.revoked = true
	}
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.FileCallsByName = make(map[string]int64, len(s.stats.FileCallsByName))
	for k, v := range s.stats.FileCallsByName {
		st.FileCallsByName[k] = v
	}
	return st
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{FileCallsByName: map[string]int64{}}
}

// takeFault returns the fault to apply to a request of the given kind, if
// any, using up one of its Count.
func (s *Server) takeFault(kind string, file bool) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	if f.Mode == FaultNone || f.Mode.fileOnly() != file {
		return Fault{}, false
	}
	if f.Target != TargetAll && f.Target != kind {
		return Fault{}, false
	}
	if f.Count > 0 {
		if s.faultLeft <= 0 {
			return Fault{}, false
		}
		s.faultLeft--
	}
	return f, true
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ---------------------------------------------------------------------------
// HTTP

const (
	kindToken = TargetToken
	kindList  = TargetList
	kindFiles = TargetFiles
	kindOther = "other"
)

type route struct {
	kind    string
	version string // "v1.1" or "v1.3"
	appKey  string
	name    string
}

func parseRoute(r *http.Request) route {
	p := r.URL.EscapedPath()
	if p == TokenPath {
		return route{kind: kindToken}
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(segs) < 5 || segs[0] != "certmanager" || (segs[1] != "v1.1" && segs[1] != "v1.3") ||
		segs[2] != "appkeys" || segs[4] != "certificates" {
		return route{kind: kindOther}
	}
	appKey, err := url.PathUnescape(segs[3])
	if err != nil {
		return route{kind: kindOther}
	}
	rt := route{version: segs[1], appKey: appKey}
	switch {
	case len(segs) == 5:
		rt.kind = kindList
	case len(segs) == 7 && segs[6] == "files":
		name, err := url.PathUnescape(segs[5])
		if err != nil || name == "" {
			return route{kind: kindOther}
		}
		rt.kind, rt.name = kindFiles, name
	default:
		return route{kind: kindOther}
	}
	return rt
}

// ServeHTTP serves the token service, the v1.1 and v1.3 Certificate Manager
// API and the admin API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == AdminPrefix || strings.HasPrefix(r.URL.Path, AdminPrefix+"/") {
		s.serveAdmin(w, r)
		return
	}
	rt := parseRoute(r)

	s.mu.Lock()
	switch rt.kind {
	case kindList:
		s.stats.ListCalls++
	case kindFiles:
		s.stats.FileCalls++
		s.stats.FileCallsByName[rt.name]++
	}
	latency := s.latency
	s.mu.Unlock()

	if !sleep(r.Context(), latency) {
		return
	}
	if f, ok := s.takeFault(rt.kind, false); ok {
		if s.applyFault(w, r, f) {
			return
		}
	}
	switch rt.kind {
	case kindToken:
		s.serveToken(w, r)
	case kindList, kindFiles:
		s.serveCertManager(w, r, rt)
	default:
		writeError(w, http.StatusNotFound, "Not Found: "+r.URL.Path)
	}
}

// applyFault answers a request with a fault; false means go on normally.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	switch f.Mode {
	case FaultDown:
		writeError(w, http.StatusServiceUnavailable, "Service Unavailable (emulated fault)")
	case FaultReset:
		resetConn(w)
	case FaultSlow:
		return !sleep(r.Context(), f.Delay)
	case FaultFlaky:
		writeError(w, http.StatusInternalServerError, "Internal Server Error (emulated fault)")
	case FaultTooMany:
		ra := f.RetryAfter
		if ra <= 0 {
			ra = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(ra))
		writeError(w, http.StatusTooManyRequests, "Too Many Requests (emulated fault)")
	case FaultGarbage:
		body := []byte(`{"header":{"resultCode":0,"isSuccessful":tru<html>502 Bad Gateway</html>`)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	case FaultResult:
		writeResult(w, f.ResultCode)
	default:
		return false
	}
	return true
}

// resetConn closes the connection without an answer.
func resetConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST rather than FIN
			}
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 or a wrapper without Hijack: abort the response.
	panic(http.ErrAbortHandler)
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed: use POST")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		writeError(w, http.StatusBadRequest, "Bad Request: Content-Type must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request: unreadable form body")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || !secureEqual(id, s.opts.AccessKeyID) || !secureEqual(secret, s.opts.SecretAccessKey) {
		s.mu.Lock()
		s.stats.TokenDenied++
		s.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="nhncloud-oauth"`)
		writeError(w, http.StatusUnauthorized, "Unauthorized: invalid User Access Key ID or Secret Access Key")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeError(w, http.StatusBadRequest, "Bad Request: grant_type must be client_credentials")
		return
	}
	tok := randomToken()
	now := s.now()
	s.mu.Lock()
	for k, t := range s.tokens {
		if !now.Before(t.expires) {
			delete(s.tokens, k)
		}
	}
	s.tokens[tok] = &tokenInfo{expires: now.Add(s.opts.TokenTTL)}
	s.stats.TokenIssued++
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.opts.TokenTTL / time.Second),
	})
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func secureEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (s *Server) serveCertManager(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed: use GET")
		return
	}
	if msg := s.authenticate(r, rt.version); msg != "" {
		s.rejectAuth(w, http.StatusUnauthorized, "Unauthorized: "+msg)
		return
	}
	if s.opts.AppKey == "" || !secureEqual(rt.appKey, s.opts.AppKey) {
		s.rejectAuth(w, http.StatusForbidden, "Forbidden: unknown appKey")
		return
	}
	if rt.kind == kindList {
		s.serveList(w, r, rt)
	} else {
		s.serveFile(w, rt)
	}
}

func (s *Server) rejectAuth(w http.ResponseWriter, status int, msg string) {
	s.mu.Lock()
	s.stats.AuthRejected++
	s.mu.Unlock()
	writeError(w, status, msg)
}

// authenticate returns "" when the request carries valid credentials for the
// API version, else why not.
func (s *Server) authenticate(r *http.Request, version string) string {
	if version == "v1.1" {
		id, idOK := r.Header["X-Tc-Authentication-Id"]
		secret, secOK := r.Header["X-Tc-Authentication-Secret"]
		if !idOK || !secOK || len(id) != 1 || len(secret) != 1 {
			return "X-TC-AUTHENTICATION-ID and X-TC-AUTHENTICATION-SECRET are required"
		}
		if !secureEqual(id[0], s.opts.AccessKeyID) || !secureEqual(secret[0], s.opts.SecretAccessKey) {
			return "invalid User Access Key ID or Secret Access Key"
		}
		return ""
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("X-NHN-AUTHORIZATION")), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "X-NHN-AUTHORIZATION: Bearer <token> is required"
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	switch {
	case !ok:
		return "invalid access token"
	case t.revoked:
		return "the access token has been revoked"
	case !now.Before(t.expires):
		return "the access token has expired"
	}
	return ""
}

type listItemV13 struct {
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

type resultHeader struct {
	ResultCode    int    `json:"resultCode"`
	ResultMessage string `json:"resultMessage"`
	IsSuccessful  bool   `json:"isSuccessful"`
}

var successHeader = resultHeader{ResultCode: ResultSuccess, ResultMessage: SuccessResultMessage, IsSuccessful: true}

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
			items = append(items, listItemV13{c.Name, c.Authority, d, c.SignatureAlgorithm, c.FileCreationDate, c.ExpirationDate})
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

// fileOf returns a certificate's file and file name, or a result code.
func (s *Server) fileOf(name string) ([]byte, string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.certs[name]
	if !ok {
		return nil, "", ResultNameNotExist
	}
	s.materializeLocked(e)
	if len(e.cert.File) == 0 {
		return nil, "", ResultFileNotExist
	}
	fn := e.cert.FileName
	if fn == "" {
		fn = e.cert.Name + ".pem"
	}
	return e.cert.File, fn, 0 // stored files are never modified in place
}

func (s *Server) serveFile(w http.ResponseWriter, rt route) {
	file, fileName, code := s.fileOf(rt.name)
	if code != 0 {
		writeResult(w, code)
		return
	}
	if f, ok := s.takeFault(kindFiles, true); ok {
		switch f.Mode {
		case FaultRotating:
			if _, err := s.Rotate(rt.name); err == nil {
				if nf, nfn, c := s.fileOf(rt.name); c == 0 {
					file, fileName = nf, nfn
				}
			}
		case FaultBadPEM:
			file = []byte("This is not a PEM file.\x00\x01\x02\xff\xfe\r\n<html><body>certificate</body></html>\n")
		case FaultMismatch:
			file = s.mismatched(file)
		case FaultHuge:
			file = hugeFile(file)
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+quoteEscaper.Replace(fileName)+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(file)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(file)
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "")

// mismatched replaces the private key(s) of a file with an unrelated key of
// the same type and encoding.
func (s *Server) mismatched(file []byte) []byte {
	var out []byte
	replaced := false
	for rest := file; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			kt, ok := keyTypeOfPEM(b)
			if !ok {
				kt = EC
			}
			out = append(out, s.otherKeyPEM(kt)...)
			replaced = true
			continue
		}
		out = append(out, pem.EncodeToMemory(b)...)
	}
	if !replaced {
		out = append(out, s.otherKeyPEM(EC)...)
	}
	return out
}

// hugeFile pads a file with copies of its first certificate to over 1 MiB.
func hugeFile(file []byte) []byte {
	var filler []byte
	for rest := file; filler == nil; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			filler = pem.EncodeToMemory(b)
		}
	}
	if filler == nil {
		junk := make([]byte, 3000)
		_, _ = rand.Read(junk)
		filler = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: junk})
	}
	var buf bytes.Buffer
	buf.Grow(hugeSize + len(filler) + len(file))
	for buf.Len() <= hugeSize {
		buf.Write(filler)
	}
	buf.Write(file)
	return buf.Bytes()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"header":{"resultCode":500,"resultMessage":"encoding error","isSuccessful":false}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError answers with the NHN JSON header shape and the HTTP status as
// resultCode (an assumption for gateway and auth errors).
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Header resultHeader `json:"header"`
	}{resultHeader{ResultCode: status, ResultMessage: msg}})
}

// writeResult answers HTTP 200 with an NHN result code and body {}.
func writeResult(w http.ResponseWriter, code int) {
	msg, ok := ResultMessages[code]
	if !ok {
		msg = resultUnknownErrorMessage
	}
	writeJSON(w, http.StatusOK, struct {
		Header resultHeader `json:"header"`
		Body   struct{}     `json:"body"`
	}{resultHeader{ResultCode: code, ResultMessage: msg}, struct{}{}})
}
