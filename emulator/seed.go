package emulator

import (
	"crypto"
	"fmt"
	mrand "math/rand/v2"
	"time"
)

type lazyLeaf struct {
	ca        *CA
	key       crypto.Signer
	keyPEM    []byte
	notBefore time.Time
	notAfter  time.Time
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
//   - example.com (new) and 웹 서버 인증서: EC, names that are not the CN
//     (NHN allows that since its release of 2025-11-25), for
//     www.example.com and example.com
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
		cn     string // default name
	}{
		// A fixed seed whose first permutation of the 3 blocks is
		// intermediate, key, leaf (later rotations continue the sequence).
		{"example.com", RSA, nil, FileOptions{Shuffle: mrand.New(mrand.NewPCG(2, 2))}, nb, na, ""},
		{"*.example.com", EC, []string{"*.example.com", "example.com"}, FileOptions{}, nb, na, ""},
		{"api.example.com", RSAPKCS8, nil, FileOptions{IncludeRoot: true}, nb, na, ""},
		{"ed25519.example.com", Ed25519, nil, FileOptions{}, nb, na, ""},
		{"expired.example.com", EC, nil, FileOptions{}, now.Add(-100 * day), now.Add(-10 * day), ""},
		{"example.com (new)", EC, []string{"example.com", "www.example.com"}, FileOptions{}, nb, na, "example.com"},
		{"웹 서버 인증서", EC, []string{"www.example.com"}, FileOptions{IncludeRoot: true}, nb, na, "www.example.com"},
	}
	chains := make([]*Chain, len(specs))
	for i, sp := range specs {
		cn := sp.cn
		if cn == "" {
			cn = sp.name
		}
		ch, err := GenerateChain(ChainOptions{CommonName: cn, DNSNames: sp.dns, KeyType: sp.kt, NotBefore: sp.nb, NotAfter: sp.na, CA: ca})
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
