package emulator

import (
	"crypto/x509"
	"fmt"
	"time"
)

// Rotate regenerates the named certificate with a new key and serial: same
// common name, DNS names and key type, same CA if the emulator made it (else
// the server's shared CA), a validity period of the same length starting an
// hour ago and ending at least a day after the old one (a renewal outlives
// what it replaces, so NHN's list shows another expirationDate even when
// the old certificate was made today), file creation date today, same file
// layout and file name.
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
	replaced := o.NotAfter
	o.NotBefore = s.now().Add(-time.Hour)
	o.NotAfter = o.NotBefore.Add(validity)
	if o.NotAfter.Before(replaced.Add(day)) {
		o.NotAfter = replaced.Add(day)
	}
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
	for b := range pemBlocks(file) {
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
