package emulator

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"iter"
)

// pemBlocks yields the PEM blocks of data in order, as pem.Decode finds them
// (text between blocks is skipped; anything after the last block is ignored).
func pemBlocks(data []byte) iter.Seq[*pem.Block] {
	return func(yield func(*pem.Block) bool) {
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil || !yield(b) {
				return
			}
		}
	}
}

// keyTypeOfPEM works out the KeyType of a PEM private key block.
func keyTypeOfPEM(b *pem.Block) (KeyType, bool) {
	switch b.Type {
	case "RSA PRIVATE KEY":
		return RSA, true
	case "EC PRIVATE KEY":
		return EC, true
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return "", false
		}
		switch k.(type) {
		case *rsa.PrivateKey:
			return RSAPKCS8, true
		case *ecdsa.PrivateKey:
			return ECPKCS8, true
		case ed25519.PrivateKey:
			return Ed25519, true
		}
	}
	return "", false
}
