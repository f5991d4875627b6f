package hostmatch

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNormalizeAccepts(t *testing.T) {
	for in, want := range map[string]string{
		"www.example.com":               "www.example.com",
		"WWW.Example.COM":               "www.example.com",
		"www.example.com.":              "www.example.com",
		"localhost":                     "localhost",
		"a":                             "a",
		"xn--bcher-kva.example":         "xn--bcher-kva.example",
		"1.2.3.example":                 "1.2.3.example",
		"123.example.com1":              "123.example.com1",
		strings.Repeat("a", 63) + ".io": strings.Repeat("a", 63) + ".io",
		"-edge-.example.com":            "-edge-.example.com",
	} {
		got, err := Normalize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	// 253 bytes exactly, with and without its trailing dot.
	long := strings.Repeat(strings.Repeat("a", 62)+".", 4)[:252] + "b"
	require.Len(t, long, 253)
	for _, in := range []string{long, long + "."} {
		_, err := Normalize(in)
		require.NoError(t, err)
	}
}

func TestNormalizeRefusesNamingTheRule(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 62)+".", 5)[:254]
	for in, rule := range map[string]string{
		"":                              "empty",
		".":                             "empty",
		"..":                            "empty label",
		"www..example.com":              "empty label",
		".example.com":                  "empty label",
		"www.example.com..":             "empty label",
		"*.example.com":                 `"*" is not allowed`,
		"*":                             `"*" is not allowed`,
		"_acme.example.com":             `"_" is not allowed`,
		"www example.com":               `" " is not allowed`,
		"www.example.com/x":             `"/" is not allowed`,
		"../../config":                  `"/" is not allowed`,
		"bücher.example":                "byte 0xc3 is not allowed",
		"www.example.com\x00":           "byte 0x00 is not allowed",
		"192.168.0.1":                   "all digits",
		"10.0.0.1.":                     "all digits",
		"::1":                           `":" is not allowed`,
		"[::1]":                         `"[" is not allowed`,
		"example.123":                   "all digits",
		strings.Repeat("a", 64) + ".io": "label is 64 bytes",
		long:                            "254 bytes",
	} {
		_, err := Normalize(in)
		require.Error(t, err, "%q", in)
		require.True(t, errors.Is(err, ErrInvalid))
		require.Contains(t, err.Error(), rule, "%q", in)
		require.NotContains(t, err.Error(), "\x00")
	}
}

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		name, host string
		wild, want bool
	}{
		{"www.example.com", "www.example.com", true, true},
		{"WWW.EXAMPLE.COM", "www.example.com", false, true},
		{"*.example.com", "www.example.com", true, true},
		{"*.EXAMPLE.com", "api.example.com", true, true},
		{"*.example.com", "www.example.com", false, false},  // hosts_wildcards=false: exact only
		{"*.example.com", "example.com", true, false},       // one label, not none
		{"*.example.com", "a.www.example.com", true, false}, // one label, not two
		{"*.www.example.com", "a.www.example.com", true, true},
		{"w*.example.com", "www.example.com", true, false}, // only a whole left-most label
		{"*.*.example.com", "a.b.example.com", true, false},
		{"*", "localhost", true, false},
		{"*.", "com", true, false},
		{"*.com", "example.com", true, true}, // as Go: no public-suffix rule
		{"example.com", "www.example.com", true, false},
		{"www.example.com.", "www.example.com", true, false}, // as Go
		{"*.example.com", "-x.example.com", true, false},     // as Go: not a well-formed host
		{"", "www.example.com", true, false},
	} {
		require.Equal(t, c.want, Covers(c.name, c.host, c.wild), "%q covers %q (wildcards %v)", c.name, c.host, c.wild)
	}
	require.True(t, CoversAny([]string{"example.com", "*.example.com"}, "www.example.com", true))
	require.False(t, CoversAny([]string{"example.com", "*.example.com"}, "www.example.com", false))
	require.False(t, CoversAny(nil, "www.example.com", true))
}

// Covers with wildcards is Go's own check: for every pair of SAN and host
// from a set of tricky ones, it agrees with VerifyHostname on a real leaf.
func TestCoversAgreesWithVerifyHostname(t *testing.T) {
	names := []string{"www.example.com", "*.example.com", "*.EXAMPLE.com", "example.com", "*.com", "w*.example.com",
		"*.*.example.com", "*", "*.", "a_b.example.com", "*.-x.example.com", "-x.example.com", "*.a.b.example.com",
		"www.example.com.", "*.example.com.", "WWW.example.COM", "x.y", "*.y", "*.x-y.example.com"}
	hosts := []string{"www.example.com", "example.com", "a.www.example.com", "a.b.example.com", "x.y", "com",
		"-x.example.com", "a.-x.example.com", "q.x-y.example.com", "www.example.com"}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	for _, n := range names {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, DNSNames: []string{n},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		require.NoError(t, err)
		leaf, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		for _, h := range hosts {
			host, err := Normalize(h)
			require.NoError(t, err)
			require.Equal(t, leaf.VerifyHostname(host) == nil, Covers(n, host, true), "SAN %q, host %q", n, host)
		}
	}
}

var (
	t0  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day = 24 * time.Hour
)

func cand(name string, id int64, nb, na time.Duration) Candidate {
	return Candidate{Name: name, ID: id, HasID: id != 0, NotBefore: t0.Add(nb), NotAfter: t0.Add(na)}
}

func chosen(cands []Candidate, now time.Time) string {
	o := Choose(cands, now)
	if o.Best < 0 {
		return ""
	}
	return cands[o.Best].Name
}

func TestChooseLatestNotAfterFirst(t *testing.T) {
	now := t0.Add(10 * day)
	cands := []Candidate{
		cand("example.com", 1, -100*day, 90*day),
		cand("example.com-2027", 2, 0, 400*day),
		cand("*.example.com", 3, -10*day, 200*day),
	}
	require.Equal(t, "example.com-2027", chosen(cands, now))
}

func TestChooseLeavesOutExpiredAndNotYetValid(t *testing.T) {
	cands := []Candidate{
		cand("old", 1, -400*day, -1*day),    // expired
		cand("future", 2, 30*day, 500*day),  // not yet valid, though latest
		cand("current", 3, -10*day, 80*day), // the one
		cand("older", 4, -300*day, -30*day), // expired
		cand("edge", 5, -10*day, 0),         // NotAfter == now: still valid, as x509 checks it
	}
	o := Choose(cands, t0)
	require.Equal(t, "current", cands[o.Best].Name)
	require.Equal(t, 2, o.Expired)
	require.Equal(t, 1, o.NotYetValid)

	o = Choose(cands[:2], t0)
	require.Equal(t, -1, o.Best)
	require.Equal(t, Outcome{Best: -1, Expired: 1, NotYetValid: 1}, o)
	require.Equal(t, Outcome{Best: -1}, Choose(nil, t0))
}

func TestChooseEqualDates(t *testing.T) {
	// Same NotAfter: the latest NotBefore.
	cands := []Candidate{cand("a", 1, -20*day, 90*day), cand("b", 2, -10*day, 90*day)}
	require.Equal(t, "b", chosen(cands, t0))
	// Same dates: the lowest certificateId, whatever the names.
	cands = []Candidate{cand("a", 9, -10*day, 90*day), cand("z", 4, -10*day, 90*day), cand("m", 7, -10*day, 90*day)}
	require.Equal(t, "z", chosen(cands, t0))
	// A certificate without an ID comes after those with one.
	cands = []Candidate{cand("a", 0, -10*day, 90*day), cand("b", 8, -10*day, 90*day)}
	require.Equal(t, "b", chosen(cands, t0))
	// No IDs: name order, in bytes.
	cands = []Candidate{cand("example.com (new)", 0, -10*day, 90*day), cand("Example", 0, -10*day, 90*day), cand("웹", 0, -10*day, 90*day)}
	require.Equal(t, "Example", chosen(cands, t0))
}

// The choice is the same whatever order NHN lists the certificates in.
func TestChooseIgnoresOrder(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var cands []Candidate
		for i := range 1 + r.IntN(8) {
			// Few distinct dates and IDs, so that ties are common.
			cands = append(cands, cand(fmt.Sprintf("c%d", i), int64(r.IntN(3)), time.Duration(r.IntN(3)-2)*day, time.Duration(r.IntN(3)-1)*day))
		}
		want := chosen(cands, t0)
		// The chosen one is valid and no valid one is better.
		for _, c := range cands {
			if c.ValidAt(t0) {
				require.NotEmpty(t, want)
				if c.Name != want {
					var w Candidate
					for _, x := range cands {
						if x.Name == want {
							w = x
						}
					}
					require.Negative(t, Compare(w, c))
				}
			}
		}
		r.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		require.Equal(t, want, chosen(cands, t0))
	}
}
