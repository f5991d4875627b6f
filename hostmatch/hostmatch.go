// Package hostmatch holds the rules of nhncert's hosts/<hostname> path,
// apart from Vault and from NHN: which strings are host names, which
// certificate names (SAN dNSName entries, or NHN's listed domains) cover a
// host as a TLS client checks it, and which of several certificates that
// cover a host is served.
//
// It imports nothing but the standard library, so that a reader can trust
// it touches no storage, no network and no key.
package hostmatch

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	// MaxLength is the longest host name, in bytes, without its trailing dot.
	MaxLength = 253
	// MaxLabel is the longest label, in bytes.
	MaxLabel = 63
)

// ErrInvalid is wrapped by every error of Normalize.
var ErrInvalid = errors.New("invalid host name")

// Normalize checks that s is an ASCII DNS host name (letters, digits,
// hyphens and dots; labels of 1 to 63 bytes; at most 253 bytes; the last
// label not all digits, so no IPv4 address) and returns it in the one form
// the engine compares: lowercase, without a trailing dot. Its error names
// the rule broken; it quotes s only cut and escaped.
func Normalize(s string) (string, error) {
	host := strings.TrimSuffix(s, ".")
	switch {
	case host == "":
		return "", invalid(s, "it is empty")
	case len(host) > MaxLength:
		return "", invalid(s, fmt.Sprintf("it is %d bytes long; a DNS name has at most %d", len(host), MaxLength))
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !isHostByte(c) {
			return "", invalid(s, fmt.Sprintf("%s is not allowed: only ASCII letters, digits, hyphens and dots (no IP addresses, wildcards, underscores, spaces, slashes or non-ASCII letters)", describeByte(host, i)))
		}
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return "", invalid(s, "it has an empty label (two dots in a row, or a leading dot)")
		case len(l) > MaxLabel:
			return "", invalid(s, fmt.Sprintf("a label is %d bytes long; a DNS label has at most %d", len(l), MaxLabel))
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "", invalid(s, "its last label is all digits: an IP address is not a DNS name")
	}
	return strings.ToLower(host), nil
}

func invalid(s, why string) error {
	return fmt.Errorf("%w %s: %s", ErrInvalid, quote(s), why)
}

func isHostByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.'
}

func allDigits(l string) bool {
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

// describeByte names the byte at i for an error: the character when it is
// printable ASCII, else its value (never a raw control or partial UTF-8
// byte in a message).
func describeByte(s string, i int) string {
	c := s[i]
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", string(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// quote writes s for an error: escaped, cut to 80 bytes.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// Covers reports whether a certificate name (a SAN dNSName, or a domain of
// NHN's list) covers host, a name Normalize returned, as Go's
// x509.Certificate.VerifyHostname checks it: equal ignoring ASCII case, or,
// when wildcards is true, a pattern "*.<rest>" whose <rest> equals all of
// host but its first label (exactly one label: "*.example.com" covers
// "www.example.com", not "example.com" nor "a.www.example.com"). As in Go,
// a wildcard counts only where the pattern and the host are well-formed
// (no label starting with a hyphen, no '*' but as the whole first label).
func Covers(name, host string, wildcards bool) bool {
	if host == "" || name == "" {
		return false
	}
	if strings.EqualFold(name, host) {
		return true
	}
	if !wildcards {
		return false
	}
	rest, ok := strings.CutPrefix(name, "*.")
	if !ok || !wellFormed(rest) || !wellFormed(host) {
		return false
	}
	_, hostRest, ok := strings.Cut(host, ".")
	return ok && strings.EqualFold(rest, hostRest)
}

// wellFormed is Go's validHostname for the part of a name a wildcard is
// matched on: non-empty labels of letters, digits, '_' and '-' (not
// first).
func wellFormed(s string) bool {
	if s == "" {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" {
			return false
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
			case c == '-' && j != 0:
			default:
				return false
			}
		}
	}
	return true
}

// CoversAny reports whether any of names covers host (see Covers).
func CoversAny(names []string, host string, wildcards bool) bool {
	for _, n := range names {
		if Covers(n, host, wildcards) {
			return true
		}
	}
	return false
}

// Candidate is one certificate that covers a host, as the choice sees it.
type Candidate struct {
	// Name is NHN's name of the certificate.
	Name string
	// ID is NHN's certificateId; HasID is false when NHN gave none.
	ID    int64
	HasID bool
	// NotBefore and NotAfter are the leaf's.
	NotBefore, NotAfter time.Time
}

// ValidAt reports whether c's leaf is within its validity at now, as a TLS
// client checks it (both ends included).
func (c Candidate) ValidAt(now time.Time) bool {
	return !now.Before(c.NotBefore) && !now.After(c.NotAfter)
}

// Compare orders candidates best first: the latest NotAfter, then the
// latest NotBefore, then the lowest certificateId (a certificate without
// one after those with one), then the name in byte order. It is a total
// order on distinct names, so the choice never depends on the order NHN
// listed the certificates in.
func Compare(a, b Candidate) int {
	return cmp.Or(
		b.NotAfter.Compare(a.NotAfter),
		b.NotBefore.Compare(a.NotBefore),
		compareIDs(a, b),
		strings.Compare(a.Name, b.Name),
	)
}

func compareIDs(a, b Candidate) int {
	switch {
	case a.HasID && b.HasID:
		return cmp.Compare(a.ID, b.ID)
	case a.HasID:
		return -1
	case b.HasID:
		return 1
	}
	return 0
}

// Outcome is what Choose found among the candidates.
type Outcome struct {
	// Best is the index of the candidate to serve; -1 when none is valid.
	Best int
	// Expired and NotYetValid count the candidates left out at now.
	Expired, NotYetValid int
}

// Choose returns the best of cands valid at now (see Compare), and how many
// were left out for their dates.
func Choose(cands []Candidate, now time.Time) Outcome {
	o := Outcome{Best: -1}
	for i, c := range cands {
		switch {
		case now.After(c.NotAfter):
			o.Expired++
			continue
		case now.Before(c.NotBefore):
			o.NotYetValid++
			continue
		}
		if o.Best < 0 || Compare(c, cands[o.Best]) < 0 {
			o.Best = i
		}
	}
	return o
}
