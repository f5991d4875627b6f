package certfile

// The chain search: from the leaf up through the file's certificates, the
// best chain as the contract ranks them (valid now, reaching a root the
// file holds, longest), at bounded cost whatever the file.

import (
	"bytes"
	"cmp"
	"crypto/x509"
	"errors"
	"slices"
	"sync/atomic"
	"time"
)

// validAt reports whether now is within c's validity.
func validAt(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && !now.After(c.NotAfter)
}

// maxChainSteps bounds the search for the best chain: a file holds at most
// maxFileCertificates certificates, but many with one subject could make
// the paths through them many.
const maxChainSteps = 4096

// buildChain returns the chain served for leaf: the certificates of the
// file from the leaf's issuer up, each one's signature on the one below
// checked. Where the file holds more than one issuer for a certificate (a
// cross-signed intermediate, once signed by an old root and once by a new
// one), every path is tried and the chain kept is, as the contract says,
// a valid one, every certificate in it within its validity at now (so an
// expired old copy of an intermediate loses to the current one, whatever
// the file order), then one that ends at a root the file holds (a
// self-signed certificate), then the longest; of equal ones the first in
// file order. It also returns the distinct certificates left out (neither
// the leaf nor in the chain).
func buildChain(leaf *x509.Certificate, certs []*x509.Certificate, now time.Time) ([]*x509.Certificate, []*x509.Certificate) {
	var distinct []*x509.Certificate
	for _, c := range certs {
		if c.Equal(leaf) || slices.ContainsFunc(distinct, c.Equal) {
			continue
		}
		distinct = append(distinct, c)
	}
	f := chainFinder{certs: distinct, used: make([]bool, len(distinct)), now: now,
		signed: make(map[[2]int]sigCheck, len(distinct)), roots: make(map[int]bool, len(distinct))}
	f.walk(-1, leaf, nil)
	var left []*x509.Certificate
	for _, c := range distinct {
		if !slices.Contains(f.best, c) {
			left = append(left, c)
		}
	}
	return f.best, left
}

// chainFinder searches the paths from a leaf upwards, depth first. A
// hostile file (a few dozen CA certificates with two names that certify
// each other, and decoys with the same names) has very many paths; the
// steps are bounded by maxChainSteps, and each signature is checked once
// per pair of certificates (signed) and each root once (roots), so the
// work is at most n² signature checks and maxChainSteps cheap steps.
type chainFinder struct {
	certs     []*x509.Certificate
	used      []bool
	now       time.Time
	steps     int
	signed    map[[2]int]sigCheck // by (child, issuer) index; the leaf is -1
	roots     map[int]bool
	best      []*x509.Certificate
	bestValid bool
	bestRoot  bool
	bestFound bool
}

// sigCheck is the result of checking a child's signature against a
// candidate issuer.
type sigCheck uint8

const (
	sigBad       sigCheck = iota + 1 // another CA's, or not a signature
	sigVerified                      // the issuer signed it
	sigUnchecked                     // an algorithm this library will not check
)

func (f *chainFinder) walk(idx int, cur *x509.Certificate, path []int) {
	f.steps++
	issuers := f.issuersOf(idx, cur)
	if bytes.Equal(cur.RawIssuer, cur.RawSubject) || len(issuers) == 0 || f.steps > maxChainSteps {
		f.consider(path, len(path) > 0 && f.isRoot(path[len(path)-1]))
		return
	}
	for _, i := range issuers {
		f.used[i] = true
		f.walk(i, f.certs[i], append(path, i))
		f.used[i] = false
	}
}

// isRoot is IsSelfSigned, once per certificate.
func (f *chainFinder) isRoot(i int) bool {
	r, ok := f.roots[i]
	if !ok {
		r = IsSelfSigned(f.certs[i])
		f.roots[i] = r
	}
	return r
}

// consider keeps path if it beats the best so far: valid now first, then
// reaching a root the file holds, then length; a tie keeps the earlier one.
func (f *chainFinder) consider(path []int, root bool) {
	valid := !slices.ContainsFunc(path, func(i int) bool { return !validAt(f.certs[i], f.now) })
	if f.bestFound && cmp.Or(boolCmp(valid, f.bestValid), boolCmp(root, f.bestRoot), cmp.Compare(len(path), len(f.best))) <= 0 {
		return
	}
	f.best = f.best[:0]
	for _, i := range path {
		f.best = append(f.best, f.certs[i])
	}
	f.bestValid, f.bestRoot, f.bestFound = valid, root, true
}

// issuersOf returns the unused certificates that signed cur (index idx),
// in file order. A certificate with cur's issuer name whose signature this
// library cannot check (an algorithm it does not support or trust) counts
// only when none checks; one whose signature does not verify is another
// CA's.
func (f *chainFinder) issuersOf(idx int, cur *x509.Certificate) []int {
	var verified, unchecked []int
	for i, c := range f.certs {
		if f.used[i] || i == idx || c.Equal(cur) || !bytes.Equal(c.RawSubject, cur.RawIssuer) {
			continue
		}
		switch f.check(idx, cur, i) {
		case sigVerified:
			verified = append(verified, i)
		case sigUnchecked:
			unchecked = append(unchecked, i)
		}
	}
	if len(verified) > 0 {
		return verified
	}
	return unchecked[:min(len(unchecked), 1)]
}

// signatureChecks counts the signature checks of chain searches, for the
// test that the work stays bounded.
var signatureChecks atomic.Int64

// check checks cur's signature against certificate i once.
func (f *chainFinder) check(idx int, cur *x509.Certificate, i int) sigCheck {
	k := [2]int{idx, i}
	if r, ok := f.signed[k]; ok {
		return r
	}
	signatureChecks.Add(1)
	err := cur.CheckSignatureFrom(f.certs[i])
	var insecure x509.InsecureAlgorithmError
	r := sigBad
	switch {
	case err == nil:
		r = sigVerified
	case errors.As(err, &insecure) || errors.Is(err, x509.ErrUnsupportedAlgorithm):
		r = sigUnchecked
	}
	f.signed[k] = r
	return r
}

// IsSelfSigned reports whether c is a root: issued by its own subject and
// signed by its own key. A signature Go will not check (SHA-1, an
// unsupported algorithm) counts, as in buildChain: old roots are signed so,
// and a client never checks a root's own signature anyway.
func IsSelfSigned(c *x509.Certificate) bool {
	if !bytes.Equal(c.RawSubject, c.RawIssuer) {
		return false
	}
	err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature)
	var insecure x509.InsecureAlgorithmError
	return err == nil || errors.As(err, &insecure) || errors.Is(err, x509.ErrUnsupportedAlgorithm)
}
