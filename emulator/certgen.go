package emulator

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"time"
)

// KeyType selects the algorithm and PEM encoding of a generated private key.
type KeyType string

const (
	RSA      KeyType = "rsa"       // RSA 2048, PKCS#1 "RSA PRIVATE KEY" (as NHN's docs show)
	RSAPKCS8 KeyType = "rsa-pkcs8" // RSA 2048, PKCS#8 "PRIVATE KEY"
	EC       KeyType = "ec"        // ECDSA P-256, SEC1 "EC PRIVATE KEY"
	ECPKCS8  KeyType = "ec-pkcs8"  // ECDSA P-256, PKCS#8 "PRIVATE KEY"
	Ed25519  KeyType = "ed25519"   // Ed25519, PKCS#8 "PRIVATE KEY"
)

// KeyTypes lists every supported KeyType.
var KeyTypes = []KeyType{RSA, RSAPKCS8, EC, ECPKCS8, Ed25519}

// Valid reports whether k is one of the supported key types.
func (k KeyType) Valid() bool {
	switch k {
	case RSA, RSAPKCS8, EC, ECPKCS8, Ed25519:
		return true
	}
	return false
}

// PEMBlockType is the PEM block type a key of this type is written in.
func (k KeyType) PEMBlockType() string {
	switch k {
	case RSA:
		return "RSA PRIVATE KEY"
	case EC:
		return "EC PRIVATE KEY"
	default:
		return "PRIVATE KEY"
	}
}

// ParseKeyType accepts the KeyType names case-insensitively; "" means EC.
func ParseKeyType(s string) (KeyType, error) {
	if s == "" {
		return EC, nil
	}
	k := KeyType(strings.ToLower(strings.TrimSpace(s)))
	if !k.Valid() {
		return "", fmt.Errorf("unknown key type %q (want one of rsa, rsa-pkcs8, ec, ec-pkcs8, ed25519)", s)
	}
	return k, nil
}

// CA is a throwaway test certificate authority: a root and zero or more
// intermediates, reusable across many leaves. Intermediates[0] signs leaves;
// Intermediates[i] is signed by Intermediates[i+1], the last one by Root.
// With no intermediates the root signs leaves. Only a CA made by NewCA can
// sign (it holds the private keys).
type CA struct {
	Root             *x509.Certificate
	RootPEM          []byte
	Intermediates    []*x509.Certificate
	IntermediatePEMs [][]byte

	rootKey          crypto.Signer
	intermediateKeys []crypto.Signer
}

// CAOrganization is the subject Organization of every CA certificate made by
// NewCA; it is what PutChain reports as the authority of their leaves.
const CAOrganization = "NHN Cloud Emulator"

// maxIntermediates bounds NewCA.
const maxIntermediates = 8

// NewCA makes a CA with EC P-256 keys and the given number of intermediates
// (0..8). The root is valid from two years ago for ten years.
func NewCA(intermediates int) (*CA, error) {
	if intermediates < 0 || intermediates > maxIntermediates {
		return nil, fmt.Errorf("emulator: intermediates must be 0..%d, got %d", maxIntermediates, intermediates)
	}
	now := time.Now()
	nb, na := now.Add(-2*365*24*time.Hour), now.Add(10*365*24*time.Hour)

	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	root, rootPEM, err := createCACert(pkix.Name{
		Organization: []string{CAOrganization},
		CommonName:   "NHN Cloud Emulator Test Root CA (NOT TRUSTED)",
	}, nb, na, rootKey, nil, rootKey)
	if err != nil {
		return nil, err
	}
	ca := &CA{
		Root:             root,
		RootPEM:          rootPEM,
		Intermediates:    make([]*x509.Certificate, intermediates),
		IntermediatePEMs: make([][]byte, intermediates),
		rootKey:          rootKey,
		intermediateKeys: make([]crypto.Signer, intermediates),
	}
	parent, parentKey := root, crypto.Signer(rootKey)
	for i := intermediates - 1; i >= 0; i-- {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		cert, certPEM, err := createCACert(pkix.Name{
			Organization: []string{CAOrganization},
			CommonName:   fmt.Sprintf("NHN Cloud Emulator Test Intermediate CA %d (NOT TRUSTED)", i+1),
		}, nb, na, key, parent, parentKey)
		if err != nil {
			return nil, err
		}
		ca.Intermediates[i], ca.IntermediatePEMs[i], ca.intermediateKeys[i] = cert, certPEM, key
		parent, parentKey = cert, key
	}
	return ca, nil
}

// CertPool returns a pool holding the CA's root, for x509.VerifyOptions.Roots.
func (ca *CA) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root)
	return p
}

// IntermediatePool returns a pool holding the CA's intermediates.
func (ca *CA) IntermediatePool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range ca.Intermediates {
		p.AddCert(c)
	}
	return p
}

// canSign reports whether the CA holds its private keys (was made by NewCA).
func (ca *CA) canSign() bool {
	if ca == nil || ca.Root == nil || ca.rootKey == nil || len(ca.intermediateKeys) != len(ca.Intermediates) {
		return false
	}
	for _, k := range ca.intermediateKeys {
		if k == nil {
			return false
		}
	}
	return true
}

// issuer returns the certificate and key that sign leaves.
func (ca *CA) issuer() (*x509.Certificate, crypto.Signer) {
	if len(ca.Intermediates) > 0 {
		return ca.Intermediates[0], ca.intermediateKeys[0]
	}
	return ca.Root, ca.rootKey
}

func createCACert(subject pkix.Name, nb, na time.Time, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, []byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               subject,
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

var serialLimit = new(big.Int).Lsh(big.NewInt(1), 127)

// randomSerial returns a random positive serial of at most 16 bytes.
func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

// FormatSerial writes a serial number the way Vault's PKI engine does:
// colon-separated lowercase hex bytes, e.g. "3a:0f:..".
func FormatSerial(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := n.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02x", c)
	}
	return sb.String()
}

// ChainOptions configures GenerateChain.
type ChainOptions struct {
	CommonName          string    // required
	DNSNames            []string  // default: []string{CommonName}
	KeyType             KeyType   // default EC
	NotBefore, NotAfter time.Time // default now-1h, now+90d
	CA                  *CA       // default: a fresh NewCA(1)
}

// Chain is a generated leaf certificate with its key and CA.
type Chain struct {
	CA      *CA
	Leaf    *x509.Certificate
	LeafPEM []byte
	Key     crypto.Signer
	KeyPEM  []byte  // PEM in the block type of KeyType
	KeyType KeyType // added: the key type the chain was made with
}

// GenerateChain makes a leaf certificate (random serial, distinct each call)
// signed by o.CA, and a private key of o.KeyType for it.
func GenerateChain(o ChainOptions) (*Chain, error) {
	if o.CommonName == "" {
		return nil, errors.New("emulator: ChainOptions.CommonName is required")
	}
	if o.KeyType == "" {
		o.KeyType = EC
	}
	if !o.KeyType.Valid() {
		return nil, fmt.Errorf("emulator: unknown key type %q", o.KeyType)
	}
	if o.CA == nil {
		ca, err := NewCA(1)
		if err != nil {
			return nil, err
		}
		o.CA = ca
	}
	key, keyPEM, err := GenerateKey(o.KeyType)
	if err != nil {
		return nil, err
	}
	return issueChain(o, key, keyPEM)
}

// issueChain signs a leaf for an existing key (o.CA must be set).
func issueChain(o ChainOptions, key crypto.Signer, keyPEM []byte) (*Chain, error) {
	if !o.CA.canSign() {
		return nil, errors.New("emulator: the CA holds no private keys; make it with NewCA")
	}
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(90 * 24 * time.Hour)
	}
	if !o.NotAfter.After(o.NotBefore) {
		return nil, errors.New("emulator: NotAfter must be after NotBefore")
	}
	dns := append([]string(nil), o.DNSNames...)
	if len(dns) == 0 {
		dns = []string{o.CommonName}
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := key.Public().(*rsa.PublicKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: o.CommonName},
		DNSNames:              dns,
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	parent, parentKey := o.CA.issuer()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Chain{
		CA:      o.CA,
		Leaf:    leaf,
		LeafPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:     key,
		KeyPEM:  keyPEM,
		KeyType: o.KeyType,
	}, nil
}

// GenerateKey makes a private key of type k and its PEM encoding.
func GenerateKey(k KeyType) (crypto.Signer, []byte, error) {
	var key crypto.Signer
	switch k {
	case RSA, RSAPKCS8:
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		key = rk
	case EC, ECPKCS8:
		ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		key = ek
	case Ed25519:
		_, ek, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		key = ek
	default:
		return nil, nil, fmt.Errorf("emulator: unknown key type %q", k)
	}
	p, err := EncodeKey(k, key)
	if err != nil {
		return nil, nil, err
	}
	return key, p, nil
}

// EncodeKey writes key as PEM in the encoding of k.
func EncodeKey(k KeyType, key crypto.Signer) ([]byte, error) {
	var der []byte
	var err error
	switch k {
	case RSA:
		rk, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("emulator: key type rsa needs an RSA key")
		}
		der = x509.MarshalPKCS1PrivateKey(rk)
	case EC:
		ek, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, errors.New("emulator: key type ec needs an ECDSA key")
		}
		der, err = x509.MarshalECPrivateKey(ek)
	case RSAPKCS8, ECPKCS8, Ed25519:
		der, err = x509.MarshalPKCS8PrivateKey(key)
	default:
		return nil, fmt.Errorf("emulator: unknown key type %q", k)
	}
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: k.PEMBlockType(), Bytes: der}), nil
}

// FileOptions shapes the PEM file made by Chain.PEMFile.
type FileOptions struct {
	IncludeRoot bool        // append the root certificate too
	Shuffle     *mrand.Rand // if non-nil, all blocks (certs and key) in random order
	KeyFirst    bool        // key block before the certificates (ignored when Shuffle is set)
	// KeyPassphrase, when set, encrypts the key block with it, in the form
	// KeyEncryption says (keyenc.go; default PKCS#8 PBES2).
	KeyPassphrase string
	KeyEncryption KeyEncryption
}

// PEMFile returns the file NHN would serve: the leaf, the intermediates (the
// leaf's issuer first), the root if o.IncludeRoot, then the key; the key
// comes first with o.KeyFirst, and o.Shuffle puts every block in random
// order. With o.KeyPassphrase the key block is encrypted.
func (c *Chain) PEMFile(o FileOptions) []byte {
	blocks := [][]byte{c.LeafPEM}
	if c.CA != nil {
		blocks = append(blocks, c.CA.IntermediatePEMs...)
		if o.IncludeRoot {
			blocks = append(blocks, c.CA.RootPEM)
		}
	}
	key := c.keyBlock(o)
	if o.KeyFirst {
		blocks = append([][]byte{key}, blocks...)
	} else {
		blocks = append(blocks, key)
	}
	if o.Shuffle != nil {
		o.Shuffle.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
	}
	return bytes.Join(blocks, nil)
}

// signatureAlgorithmName names x509 signature algorithms the way NHN's list
// does ("SHA256withRSA").
func signatureAlgorithmName(a x509.SignatureAlgorithm) string {
	switch a {
	case x509.SHA256WithRSA:
		return "SHA256withRSA"
	case x509.SHA384WithRSA:
		return "SHA384withRSA"
	case x509.SHA512WithRSA:
		return "SHA512withRSA"
	case x509.SHA1WithRSA:
		return "SHA1withRSA"
	case x509.SHA256WithRSAPSS:
		return "SHA256withRSAandMGF1"
	case x509.ECDSAWithSHA256:
		return "SHA256withECDSA"
	case x509.ECDSAWithSHA384:
		return "SHA384withECDSA"
	case x509.ECDSAWithSHA512:
		return "SHA512withECDSA"
	case x509.PureEd25519:
		return "Ed25519"
	}
	return a.String()
}

// authorityOf is the authority NHN would list for a leaf: its issuer's
// organization, or else its issuer's common name.
func authorityOf(leaf *x509.Certificate) string {
	if len(leaf.Issuer.Organization) > 0 && leaf.Issuer.Organization[0] != "" {
		return leaf.Issuer.Organization[0]
	}
	return leaf.Issuer.CommonName
}
