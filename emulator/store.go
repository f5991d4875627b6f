package emulator

import (
	"errors"
	"sort"
)

// ErrNotFound is returned (wrapped) for a certificate name the emulator does
// not hold.
var ErrNotFound = errors.New("emulator: certificate not found")

// Certificate is one certificate as Certificate Manager holds it: list
// metadata and the downloadable file.
type Certificate struct {
	// ID is NHN's certificateId, listed in v1.3 and used by the download
	// by ID. Put with 0 keeps the ID the name has, or gives a new one, as
	// NHN keeps a certificate's ID when its file is replaced; NoID lists
	// the certificate without one (an answer from before certificateId).
	ID                 int64
	NoID               bool
	Name               string
	Authority          string   // e.g. "NHN", "Let's Encrypt"
	Domains            []string // listed in v1.3 ("domains"); v1.1 lists have no such field
	SignatureAlgorithm string   // e.g. "SHA256withRSA", "SHA256withECDSA"
	FileCreationDate   string   // "YYYY-MM-DD"
	ExpirationDate     string   // "YYYY-MM-DD"
	File               []byte   // nil or empty => download answers 52001
	FileName           string   // Content-Disposition filename; default Name+".pem"
}

type entry struct {
	cert  Certificate
	chain *Chain      // set when the emulator knows the chain (PutChain, Rotate, generated)
	fo    FileOptions // how chain was written to cert.File
	lazy  *lazyLeaf   // set for Seed entries until their file is first needed
}

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
	old, ok := s.certs[e.cert.Name]
	if !ok {
		s.sorted = nil
	}
	switch {
	case e.cert.ID != 0:
		s.lastID = max(s.lastID, e.cert.ID)
	case ok && old.cert.ID != 0:
		e.cert.ID = old.cert.ID
	default:
		s.lastID++
		e.cert.ID = s.lastID
	}
	s.certs[e.cert.Name] = e
}

// byIDLocked returns the name of the certificate with NHN's certificateId
// id; false when none has it.
func (s *Server) byIDLocked(id int64) (string, bool) {
	for n, e := range s.certs {
		if e.cert.ID == id && !e.cert.NoID {
			return n, true
		}
	}
	return "", false
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
