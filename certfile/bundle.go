package certfile

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
)

const (
	// maxFileSize bounds a certificate file. NHN accepts uploads of at most
	// 512 KB; twice that leaves room for any encoding slack.
	maxFileSize = 1 << 20
	// maxFileCertificates bounds the certificates in one file. Real chains
	// hold a handful; a file with more is refused rather than walked.
	maxFileCertificates = 32
)

// Bundle is a certificate file from NHN split into its parts and checked:
// the private key matches the leaf, and the chain runs from the leaf's
// issuer towards the root in signing order, whatever order the file had.
type Bundle struct {
	Leaf *x509.Certificate
	// Chain holds the leaf's issuer first, then its issuer, and so on; the
	// root is last when the file holds it.
	Chain []*x509.Certificate
	// LeftOut holds the certificates of the file that are neither the leaf
	// nor in Chain (another certificate's chain, the other path of a
	// cross-signed intermediate), each once; the response leaves them out.
	LeftOut []*x509.Certificate
	// Skipped counts PEM blocks that OpenSSL's tools skip too: bad base64,
	// a bad END line, RFC 1421 headers, DER that is no certificate, an
	// encrypted key next to the plain one.
	Skipped int
	// ExtraKeys counts private keys besides Key; they are left out.
	ExtraKeys int

	Key crypto.Signer
	// KeyType is "rsa", "ec" or "ed25519".
	KeyType string
	// KeyBlock is the key's PEM block as the file had it ("RSA PRIVATE KEY",
	// "EC PRIVATE KEY" or "PRIVATE KEY"), labelled for the encoding it
	// really has should the file's label be another; decrypted when the
	// file's key was encrypted (in the encoding inside the encryption).
	KeyBlock *pem.Block
	// KeyEncrypted is set when the file held the key encrypted and the
	// passphrase set for the certificate opened it (encrypted.go).
	KeyEncrypted bool
}

// ParseBundle splits and checks a PEM certificate file. It reads what
// OpenSSL reads (see pem.go): a block OpenSSL skips is skipped here
// too and named in Warnings, so that a file `openssl x509` and `openssl
// pkey` read is never refused as damaged. A file whose key is encrypted is
// refused with an *encryptedKeyError; parseBundle opens it with a
// passphrase.
func ParseBundle(data []byte) (*Bundle, error) { return Parse(data, nil) }

// parseBundle is ParseBundle with the passphrase of the file's certificate
// (nil: none is set), asked for only when the key is encrypted.
func Parse(data []byte, passphrase Passphrase) (*Bundle, error) {
	if len(data) > maxFileSize {
		return nil, bundleErrorf("file is %d bytes; at most %d are accepted", len(data), maxFileSize)
	}
	var (
		certs     []*x509.Certificate
		keys      []parsedKey
		skipped   int
		blocks    int
		tooMany   bool
		encrypted []encryptedKey
		certErr   error
		keyErr    error
	)
	undecodable, complete := scanPEM(data, func(block pemBlock) bool {
		blocks++
		if block.Headers != "" {
			// RFC 1421 headers: OpenSSL reads only Proc-Type ones, for a
			// legacy encrypted key, and needs a password for those.
			if legacyEncryptedKey(block) {
				encrypted = append(encrypted, encryptedKey{block: block, legacy: true})
				return true
			}
			skipped++
			return false
		}
		switch block.Type {
		case "CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE":
			der := block.Bytes
			if block.Type == "TRUSTED CERTIFICATE" {
				// The certificate, then OpenSSL's trust settings.
				var raw asn1.RawValue
				if _, err := asn1.Unmarshal(der, &raw); err == nil {
					der = raw.FullBytes
				}
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				if certErr == nil {
					certErr = fmt.Errorf("certificate block %d cannot be parsed: %v", len(certs)+skipped+1, err)
				}
				skipped++
				return false
			}
			if len(certs) == maxFileCertificates {
				tooMany = true
				return true
			}
			certs = append(certs, c)
		case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY":
			k, err := parsePrivateKey(&pem.Block{Type: block.Type, Bytes: block.Bytes})
			if err != nil {
				if keyErr == nil {
					keyErr = err
				}
				skipped++
				return false
			}
			keys = append(keys, k)
		case "ENCRYPTED PRIVATE KEY":
			encrypted = append(encrypted, encryptedKey{block: block})
		default:
			// EC PARAMETERS, PUBLIC KEY and the like carry nothing we
			// serve; a label OpenSSL does not know is skipped by it too.
		}
		return true
	})
	skipped += undecodable
	switch {
	case tooMany:
		return nil, bundleErrorf("file holds more than %d certificates", maxFileCertificates)
	case !complete:
		return nil, bundleErrorf("file holds more than %d PEM blocks", maxPEMBlocks)
	case blocks == 0 && undecodable == 0:
		return nil, bundleErrorf("not a PEM file")
	}
	if len(certs) == 0 {
		if certErr != nil {
			return nil, &Error{msg: certErr.Error()}
		}
		if skipped > 0 {
			return nil, bundleErrorf("file holds no certificate that can be read (%d PEM block(s) cannot be decoded)", skipped)
		}
		return nil, bundleErrorf("file holds no certificate")
	}
	key, extraKeys := chooseKey(keys)
	keyEncrypted := false
	switch {
	case key != nil:
		// An encrypted key next to a plain one: the plain one is served,
		// the other skipped, as before passphrases existed.
		skipped += len(encrypted)
	case len(encrypted) > 0:
		k, err := decryptKey(encrypted[0], passphrase)
		if err != nil {
			return nil, err
		}
		key, extraKeys, keyEncrypted = &k, len(encrypted)-1, true
	}
	if key == nil {
		switch {
		case keyErr != nil:
			return nil, keyErr
		case skipped > 0:
			return nil, bundleErrorf("file holds no private key that can be read (%d PEM block(s) cannot be decoded)", skipped)
		}
		return nil, bundleErrorf("file holds no private key")
	}

	// "Valid" is as of the parse: every download, refresh and storage load
	// parses again, so a copy held past an expiry is judged anew.
	now := time.Now()
	leaf := findLeaf(certs, key.signer.Public(), now)
	if leaf == nil {
		return nil, bundleErrorf("the private key does not match the leaf certificate (%s)", describeCert(guessLeaf(certs)))
	}
	chain, left := buildChain(leaf, certs, now)
	return &Bundle{
		Leaf:         leaf,
		Chain:        chain,
		LeftOut:      left,
		Skipped:      skipped,
		ExtraKeys:    extraKeys,
		Key:          key.signer,
		KeyType:      key.keyType,
		KeyBlock:     key.block,
		KeyEncrypted: keyEncrypted,
	}, nil
}

// parsedKey is a private key read from the file.
type parsedKey struct {
	signer  crypto.Signer
	keyType string
	block   *pem.Block
}

// chooseKey picks the private key as `openssl pkey` (and a server given
// the file as its key) does: the first one that can be read. A second key
// is rare and left out with a warning; if the first does not match the
// leaf, the file is refused, as a server would fail on it.
func chooseKey(keys []parsedKey) (*parsedKey, int) {
	if len(keys) == 0 {
		return nil, 0
	}
	return &keys[0], len(keys) - 1
}

// parsePrivateKey parses a key block. OpenSSL decodes a key whatever its
// label says (an EC key labelled "RSA PRIVATE KEY" is read), so the label's
// own encoding is tried first and then the others; the block returned is
// labelled for the encoding that parsed, so that the key is served in the
// form the file really had.
func parsePrivateKey(block *pem.Block) (parsedKey, error) {
	type parser struct {
		label string
		parse func([]byte) (any, error)
	}
	parsers := []parser{
		{"RSA PRIVATE KEY", func(b []byte) (any, error) { return x509.ParsePKCS1PrivateKey(b) }},
		{"EC PRIVATE KEY", func(b []byte) (any, error) { return x509.ParseECPrivateKey(b) }},
		{"PRIVATE KEY", x509.ParsePKCS8PrivateKey},
	}
	slices.SortStableFunc(parsers, func(a, b parser) int {
		return boolCmp(b.label == block.Type, a.label == block.Type)
	})
	var (
		key   any
		label string
		err   error
	)
	for i, p := range parsers {
		k, e := p.parse(block.Bytes)
		if e == nil {
			key, label, err = k, p.label, nil
			break
		}
		if i == 0 {
			// The parser's message names the structure, never the key bytes.
			err = bundleErrorf("the %s block cannot be parsed: %s", block.Type, safetext.Clean(e.Error(), 100))
		}
	}
	if err != nil {
		return parsedKey{}, err
	}
	out := &pem.Block{Type: label, Bytes: block.Bytes}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return parsedKey{k, "rsa", out}, nil
	case *ecdsa.PrivateKey:
		return parsedKey{k, "ec", out}, nil
	case ed25519.PrivateKey:
		return parsedKey{k, "ed25519", out}, nil
	default:
		return parsedKey{}, bundleErrorf("unsupported private key type %T", key)
	}
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}

// findLeaf returns the certificate whose public key is the private key's,
// preferring one that is not a CA, then one within its validity at now (a
// renewal that kept its key, next to the expired leaf it replaces), then
// the first in file order.
func findLeaf(certs []*x509.Certificate, pub crypto.PublicKey, now time.Time) *x509.Certificate {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	var match *x509.Certificate
	for _, c := range certs {
		k, ok := c.PublicKey.(equaler)
		if !ok || !k.Equal(pub) {
			continue
		}
		if match == nil || cmp.Or(boolCmp(!c.IsCA, !match.IsCA), boolCmp(validAt(c, now), validAt(match, now))) > 0 {
			match = c
		}
	}
	return match
}

// guessLeaf names the certificate that signs no other one in the file, for
// an error message when no certificate matches the key.
func guessLeaf(certs []*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		issuer := false
		for _, o := range certs {
			if o != c && bytes.Equal(o.RawIssuer, c.RawSubject) {
				issuer = true
				break
			}
		}
		if !issuer {
			return c
		}
	}
	return certs[0]
}

func describeCert(c *x509.Certificate) string {
	return describeName(c.Subject.CommonName, c.Subject.String())
}

func describeName(cn, dn string) string {
	if cn != "" {
		return "CN=" + safetext.Clean(cn, 100)
	}
	return safetext.Clean(dn, 100)
}

// maxNamedLeftOut bounds the left-out certificates a warning names.
const maxNamedLeftOut = 5

// Warnings say what of the file is not served, for every read of it.
func (b *Bundle) Warnings() []string {
	var w []string
	if n := len(b.LeftOut); n > 0 {
		names := make([]string, 0, min(n, maxNamedLeftOut))
		for _, c := range b.LeftOut[:min(n, maxNamedLeftOut)] {
			names = append(names, describeCert(c)+" issued by "+describeName(c.Issuer.CommonName, c.Issuer.String()))
		}
		more := ""
		if n > maxNamedLeftOut {
			more = fmt.Sprintf(" and %d more", n-maxNamedLeftOut)
		}
		w = append(w, fmt.Sprintf("the file holds %d certificate(s) outside the served chain; they are left out: %s%s", n, strings.Join(names, "; "), more))
	}
	if b.Skipped > 0 {
		w = append(w, fmt.Sprintf("the file holds %d PEM block(s) that cannot be read (bad base64, a bad END line, headers, or no certificate inside), as OpenSSL's tools also skip them; they are left out", b.Skipped))
	}
	if b.ExtraKeys > 0 {
		w = append(w, fmt.Sprintf("the file holds %d more private key(s) after the one served; they are left out", b.ExtraKeys))
	}
	return w
}
