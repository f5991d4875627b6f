package nhncert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
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
	// Unrelated counts certificates in the file that are not part of the
	// leaf's chain; they are left out of the response.
	Unrelated int

	Key crypto.Signer
	// KeyType is "rsa", "ec" or "ed25519".
	KeyType string
	// KeyBlock is the key's PEM block as the file had it ("RSA PRIVATE KEY",
	// "EC PRIVATE KEY" or "PRIVATE KEY"), without PEM headers.
	KeyBlock *pem.Block
}

// ParseBundle splits and checks a PEM certificate file.
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > maxFileSize {
		return nil, bundleErrorf("file is %d bytes; at most %d are accepted", len(data), maxFileSize)
	}
	var (
		certs    []*x509.Certificate
		keyBlock *pem.Block
		blocks   int
	)
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		blocks++
		switch block.Type {
		case "CERTIFICATE":
			if len(certs) == maxFileCertificates {
				return nil, bundleErrorf("file holds more than %d certificates", maxFileCertificates)
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, bundleErrorf("certificate block %d cannot be parsed: %v", len(certs)+1, err)
			}
			certs = append(certs, c)
		case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY":
			//lint:ignore SA1019 detecting legacy encryption to refuse it clearly, not using it
			if x509.IsEncryptedPEMBlock(block) {
				return nil, bundleErrorf("the private key is encrypted; NHN must hold it unencrypted")
			}
			if keyBlock != nil {
				return nil, bundleErrorf("file holds more than one private key")
			}
			keyBlock = &pem.Block{Type: block.Type, Bytes: block.Bytes}
		case "ENCRYPTED PRIVATE KEY":
			return nil, bundleErrorf("the private key is encrypted; NHN must hold it unencrypted")
		default:
			// EC PARAMETERS, PUBLIC KEY and the like carry nothing we serve.
		}
	}
	if blocks == 0 {
		return nil, bundleErrorf("not a PEM file")
	}
	// pem.Decode skips a block it cannot decode; a file with one is damaged,
	// not a file without that block.
	if begins := bytes.Count(data, []byte("-----BEGIN ")); begins != blocks {
		return nil, bundleErrorf("file holds %d PEM block(s) that cannot be decoded (bad base64 or a missing END line)", begins-blocks)
	}
	if len(certs) == 0 {
		return nil, bundleErrorf("file holds no certificate")
	}
	if keyBlock == nil {
		return nil, bundleErrorf("file holds no private key")
	}
	key, keyType, err := parsePrivateKey(keyBlock)
	if err != nil {
		return nil, err
	}

	leaf := findLeaf(certs, key.Public())
	if leaf == nil {
		return nil, bundleErrorf("the private key does not match the leaf certificate (%s)", describeCert(guessLeaf(certs)))
	}
	chain, unrelated := buildChain(leaf, certs)
	return &Bundle{
		Leaf:      leaf,
		Chain:     chain,
		Unrelated: unrelated,
		Key:       key,
		KeyType:   keyType,
		KeyBlock:  keyBlock,
	}, nil
}

func parsePrivateKey(block *pem.Block) (crypto.Signer, string, error) {
	var (
		key any
		err error
	)
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		// The parser's message names the structure, never the key bytes.
		return nil, "", bundleErrorf("the %s block cannot be parsed: %v", block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, "rsa", nil
	case *ecdsa.PrivateKey:
		return k, "ec", nil
	case ed25519.PrivateKey:
		return k, "ed25519", nil
	default:
		return nil, "", bundleErrorf("unsupported private key type %T", key)
	}
}

// findLeaf returns the certificate whose public key is the private key's,
// preferring one that is not a CA.
func findLeaf(certs []*x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	var match *x509.Certificate
	for _, c := range certs {
		k, ok := c.PublicKey.(equaler)
		if !ok || !k.Equal(pub) {
			continue
		}
		if !c.IsCA {
			return c
		}
		if match == nil {
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
	if c.Subject.CommonName != "" {
		return "CN=" + cleanText(c.Subject.CommonName, 100)
	}
	return "subject " + cleanText(c.Subject.String(), 100)
}

// buildChain walks from the leaf to its issuer, that one's issuer and so on,
// taking each from certs by subject and signature, until a self-signed
// certificate or one whose issuer the file does not hold. It returns the
// chain without the leaf and how many certificates were left over.
func buildChain(leaf *x509.Certificate, certs []*x509.Certificate) ([]*x509.Certificate, int) {
	used := make([]bool, len(certs))
	distinct := 0
	for i, c := range certs {
		if c.Equal(leaf) {
			used[i] = true
			continue
		}
		dup := false
		for _, o := range certs[:i] {
			if o.Equal(c) {
				dup = true
				break
			}
		}
		if dup {
			used[i] = true
		} else {
			distinct++
		}
	}
	var chain []*x509.Certificate
	cur := leaf
	for !bytes.Equal(cur.RawIssuer, cur.RawSubject) {
		next := -1
		for i, c := range certs {
			if used[i] || !bytes.Equal(c.RawSubject, cur.RawIssuer) {
				continue
			}
			err := cur.CheckSignatureFrom(c)
			if err == nil {
				next = i
				break
			}
			// Same name, but a signature this library cannot check (an
			// algorithm it does not support or trust): the best candidate
			// so far. A signature that does not verify is another CA's.
			var insecure x509.InsecureAlgorithmError
			if next < 0 && (errors.As(err, &insecure) || errors.Is(err, x509.ErrUnsupportedAlgorithm)) {
				next = i
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		chain = append(chain, certs[next])
		cur = certs[next]
	}
	return chain, distinct - len(chain)
}
