package emulator

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/youmark/pkcs8"
)

// Encrypted keys, as NHN holds them when the key was uploaded with a
// passphrase (its console asks for the key's passphrase).

// KeyEncryption is how FileOptions.KeyPassphrase encrypts the key block.
type KeyEncryption string

const (
	// KeyPKCS8 is PKCS#8 "ENCRYPTED PRIVATE KEY" with PBES2 (PBKDF2
	// HMAC-SHA256, AES-256-CBC), what `openssl pkcs8 -topk8` and `openssl
	// genpkey -aes256` write. The default.
	KeyPKCS8 KeyEncryption = "pkcs8"
	// KeyLegacy is the legacy PEM encryption (Proc-Type: 4,ENCRYPTED,
	// DEK-Info: AES-256-CBC), what `openssl rsa -aes256` writes, on the
	// key's own block (PKCS#1, SEC1 or PKCS#8).
	KeyLegacy KeyEncryption = "legacy"
)

// ParseKeyEncryption reads a KeyEncryption; "" is KeyPKCS8.
func ParseKeyEncryption(s string) (KeyEncryption, error) {
	switch KeyEncryption(s) {
	case "", KeyPKCS8:
		return KeyPKCS8, nil
	case KeyLegacy:
		return KeyLegacy, nil
	}
	return "", fmt.Errorf("emulator: unknown key encryption %q (want %q or %q)", s, KeyPKCS8, KeyLegacy)
}

// EncryptKeyPEM returns keyPEM (one private key block) encrypted with
// passphrase in the form enc.
func EncryptKeyPEM(keyPEM []byte, passphrase string, enc KeyEncryption) ([]byte, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, fmt.Errorf("emulator: the key is not PEM")
	}
	switch enc {
	case "", KeyPKCS8:
		key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			key, err = parseTraditionalKey(b)
		}
		if err != nil {
			return nil, err
		}
		der, err := pkcs8.MarshalPrivateKey(key, []byte(passphrase), nil)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
	case KeyLegacy:
		//lint:ignore SA1019 the legacy PEM encryption is what the emulator must serve: files NHN holds have it
		eb, err := x509.EncryptPEMBlock(rand.Reader, b.Type, b.Bytes, []byte(passphrase), x509.PEMCipherAES256)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(eb), nil
	}
	return nil, fmt.Errorf("emulator: unknown key encryption %q", enc)
}

func parseTraditionalKey(b *pem.Block) (any, error) {
	if b.Type == "EC PRIVATE KEY" {
		return x509.ParseECPrivateKey(b.Bytes)
	}
	return x509.ParsePKCS1PrivateKey(b.Bytes)
}

// keyBlock is the key as PEMFile puts it in the file: encrypted when
// o.KeyPassphrase is set. Encryption cannot fail for the keys this
// package makes (crypto/rand does not fail, every type marshals): a
// failure is a bug, and panics rather than serve a file without its key.
func (c *Chain) keyBlock(o FileOptions) []byte {
	if o.KeyPassphrase == "" {
		return c.KeyPEM
	}
	p, err := EncryptKeyPEM(c.KeyPEM, o.KeyPassphrase, o.KeyEncryption)
	if err != nil {
		panic(fmt.Sprintf("emulator: encrypting the key: %v", err))
	}
	return p
}
