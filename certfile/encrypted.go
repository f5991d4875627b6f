package certfile

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/youmark/pkcs8"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
)

// Encrypted private keys in a certificate file. NHN's console takes a key
// with a passphrase, so a file may hold its key in one of the two forms
// OpenSSL writes:
//
//   - the legacy PEM encryption (RFC 1421 headers "Proc-Type: 4,ENCRYPTED"
//     and "DEK-Info: <cipher>,<iv>", what `openssl rsa -aes256` and `openssl
//     ec -aes256` write): AES-128/192/256-CBC, DES-EDE3-CBC or DES-CBC with
//     OpenSSL's one-round MD5 key derivation. The standard library still
//     decrypts it (x509.DecryptPEMBlock, deprecated for that weak
//     derivation, which is not ours to choose: it is the file's);
//   - PKCS#8 "ENCRYPTED PRIVATE KEY" (what `openssl pkcs8 -topk8` and
//     `openssl genpkey -aes256` write): PBES2 with PBKDF2 (HMAC-SHA1 or
//     HMAC-SHA256) or scrypt, and AES or DES-EDE3, decrypted by
//     github.com/youmark/pkcs8. The older PBES1 schemes (`openssl pkcs8
//     -v1 ...`) are not read by that library, and are refused with an error
//     that names the scheme and how to re-encrypt the key.
//
// The passphrase is the operator's (passphrases/<name>, path_passphrases.go);
// no error, log line or warning ever holds it or the key's bytes. A key is
// served decrypted, in the form its inner encoding has (PKCS#1, SEC1 or
// PKCS#8), as an unencrypted file's key is.

// passphraseSource returns the passphrase set for the certificate whose
// file is being parsed, or nil when none is set. ParseBundle calls it only
// for a file whose key is encrypted (and holds no plain key), so that a
// plain file costs no storage read.
type Passphrase func() ([]byte, error)

// keyRefusal says why an encrypted key cannot be opened.
type keyRefusal int

const (
	refusedNoPassphrase    keyRefusal = iota + 1 // none is set for the name
	refusedWrongPassphrase                       // the one set does not decrypt the key
	refusedUnsupported                           // a scheme this engine does not read
	refusedWork                                  // key derivation asking for more work than the bound
)

// encryptedKeyError is a file whose key is encrypted and cannot be opened
// with what the engine holds. It is the copy's state until the passphrase
// or the file changes (the engine's cache_passphrase.go), never cached as a copy.
type KeyError struct {
	reason keyRefusal
	// scheme says how the key is encrypted ("PKCS#8 PBES2 (PBKDF2
	// HMAC-SHA256, AES-256-CBC)"), from the file's algorithm identifiers.
	scheme string
	// path is where the passphrase is written (the mount's
	// passphrases/<name>), set by the cache; empty in ParseBundle's answer.
	path string
	// bound names the bound a refusedWork key derivation exceeds.
	bound string
}

func (e *KeyError) Error() string {
	where := "<mount>/passphrases/<name>"
	if e.path != "" {
		where = strconv.Quote(e.path)
	}
	switch e.reason {
	case refusedNoPassphrase:
		return fmt.Sprintf("the private key is encrypted (%s) and no passphrase is set for this certificate: write it to %s (vault write %s passphrase=-)", e.scheme, where, where)
	case refusedWrongPassphrase:
		return fmt.Sprintf("the passphrase set at %s does not decrypt the private key (%s): write the right one there", where, e.scheme)
	case refusedWork:
		return fmt.Sprintf("the private key is encrypted with %s, whose key derivation asks for more work than is allowed (%s, about a second): encrypt it again with OpenSSL's defaults (openssl pkcs8 -topk8 -v2 aes-256-cbc)", e.scheme, e.bound)
	default:
		return fmt.Sprintf("the private key is encrypted with %s, which this engine cannot decrypt: upload the file with the key encrypted by PBES2 (openssl pkcs8 -topk8 -v2 aes-256-cbc) or by AES in the legacy PEM form", e.scheme)
	}
}

// withPath returns a copy of e that names path.
func (e *KeyError) WithPath(path string) *KeyError {
	cp := *e
	cp.path = path
	return &cp
}

// encryptedKey is an encrypted key block of a file.
type encryptedKey struct {
	block  pemBlock
	legacy bool // RFC 1421 headers; else PKCS#8 ENCRYPTED PRIVATE KEY
}

// legacyEncryptedKey reports whether a block with headers is a private key
// in the legacy PEM encryption: a key label and "Proc-Type: 4,ENCRYPTED".
func legacyEncryptedKey(b pemBlock) bool {
	switch b.Type {
	case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY":
	default:
		return false
	}
	v, ok := pemHeaders(b.Headers)["Proc-Type"]
	return ok && strings.ReplaceAll(v, " ", "") == "4,ENCRYPTED"
}

// pemHeaders splits RFC 1421 header text into its fields.
func pemHeaders(text string) map[string]string {
	h := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			h[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return h
}

// decryptKey opens an encrypted key block with the passphrase source's
// passphrase and parses the key inside.
func decryptKey(k encryptedKey, passphrase Passphrase) (parsedKey, error) {
	var (
		scheme string
		open   func(pass []byte) ([]byte, string, bool)
		err    error
	)
	if k.legacy {
		scheme, open, err = legacyScheme(k.block)
	} else {
		scheme, open, err = pkcs8Scheme(k.block.Bytes)
	}
	if err != nil {
		return parsedKey{}, err
	}
	var pass []byte
	if passphrase != nil {
		if pass, err = passphrase(); err != nil {
			return parsedKey{}, fmt.Errorf("reading the passphrase: %w", err)
		}
	}
	if len(pass) == 0 {
		return parsedKey{}, &KeyError{reason: refusedNoPassphrase, scheme: scheme}
	}
	der, label, ok := open(pass)
	if !ok {
		return parsedKey{}, &KeyError{reason: refusedWrongPassphrase, scheme: scheme}
	}
	key, err := parsePrivateKey(&pem.Block{Type: label, Bytes: der})
	if err != nil {
		// Padding that happened to check out under a wrong passphrase
		// (1 in 256 for CBC) leaves bytes that are no key.
		return parsedKey{}, &KeyError{reason: refusedWrongPassphrase, scheme: scheme}
	}
	return key, nil
}

// legacyScheme reads a legacy encrypted block's DEK-Info and returns how
// to open it.
func legacyScheme(b pemBlock) (string, func([]byte) ([]byte, string, bool), error) {
	dek := pemHeaders(b.Headers)["DEK-Info"]
	cipherName, _, _ := strings.Cut(dek, ",")
	scheme := "legacy PEM " + safetext.Clean(cipherName, 40)
	switch cipherName {
	case "AES-128-CBC", "AES-192-CBC", "AES-256-CBC", "DES-EDE3-CBC", "DES-CBC":
	case "":
		return "", nil, bundleErrorf("the private key is encrypted, but its legacy encrypted block has no DEK-Info header")
	default:
		return "", nil, &KeyError{reason: refusedUnsupported, scheme: scheme}
	}
	block := &pem.Block{Type: b.Type, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": dek}, Bytes: b.Bytes}
	return scheme, func(pass []byte) ([]byte, string, bool) {
		//lint:ignore SA1019 the legacy PEM encryption is the file's, as NHN holds it; its weak key derivation is why the function is deprecated, and there is no other reader of this form
		der, err := x509.DecryptPEMBlock(block, pass)
		return der, b.Type, err == nil
	}, nil
}

// Bounds on the work a file's key derivation may ask for (CONTRACT:
// "key derivation parameters whose work exceeds what about a second
// allows (scrypt N x r x p, PBKDF2 iterations) are refused"). OpenSSL
// writes 2048 PBKDF2 iterations and scrypt N=16384, r=8, p=1 (N x r x p =
// 2^17) by default; OWASP asks for 600,000 PBKDF2-HMAC-SHA256 iterations.
// scrypt's work grows with N x r x p (p = 16 at the memory bound took
// 4.6 s), its memory with N x r; PBKDF2's with the iterations.
const (
	maxPBKDF2Iterations = 600_000
	maxScryptMemory     = 64 << 20 // bytes: 128 * N * r
	maxScryptWork       = 1 << 20  // N * r * p: 8 times OpenSSL's default
)

var (
	oidPBES2        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt       = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACSHA1     = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidPKCS5PBES1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5}
	oidPKCS12PBE    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
	oidAESPrefix    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1}
	oidDESEDE3CBC   = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	pkcs8CipherName = map[string]string{
		"2.16.840.1.101.3.4.1.2": "AES-128-CBC", "2.16.840.1.101.3.4.1.22": "AES-192-CBC", "2.16.840.1.101.3.4.1.42": "AES-256-CBC",
		"2.16.840.1.101.3.4.1.6": "AES-128-GCM", "2.16.840.1.101.3.4.1.26": "AES-192-GCM", "2.16.840.1.101.3.4.1.46": "AES-256-GCM",
		oidDESEDE3CBC.String(): "DES-EDE3-CBC",
	}
	pbes1Name = map[string]string{
		"1.2.840.113549.1.5.1": "pbeWithMD2AndDES-CBC", "1.2.840.113549.1.5.3": "pbeWithMD5AndDES-CBC",
		"1.2.840.113549.1.5.4": "pbeWithMD2AndRC2-CBC", "1.2.840.113549.1.5.6": "pbeWithMD5AndRC2-CBC",
		"1.2.840.113549.1.5.10": "pbeWithSHA1AndDES-CBC", "1.2.840.113549.1.5.11": "pbeWithSHA1AndRC2-CBC",
		"1.2.840.113549.1.12.1.1": "pbeWithSHAAnd128BitRC4", "1.2.840.113549.1.12.1.2": "pbeWithSHAAnd40BitRC4",
		"1.2.840.113549.1.12.1.3": "pbeWithSHAAnd3-KeyTripleDES-CBC", "1.2.840.113549.1.12.1.4": "pbeWithSHAAnd2-KeyTripleDES-CBC",
		"1.2.840.113549.1.12.1.5": "pbeWithSHAAnd128BitRC2-CBC", "1.2.840.113549.1.12.1.6": "pbewithSHAAnd40BitRC2-CBC",
	}
	hmacName = map[string]string{
		"1.2.840.113549.2.7": "HMAC-SHA1", "1.2.840.113549.2.8": "HMAC-SHA224", "1.2.840.113549.2.9": "HMAC-SHA256",
		"1.2.840.113549.2.10": "HMAC-SHA384", "1.2.840.113549.2.11": "HMAC-SHA512",
	}
)

type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KDF    pkix.AlgorithmIdentifier
	Scheme pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

type scryptParams struct {
	Salt                     []byte
	Cost, Block, Parallelism int
	KeyLength                int `asn1:"optional"`
}

// pkcs8Scheme reads an ENCRYPTED PRIVATE KEY's algorithm identifiers,
// refuses what youmark/pkcs8 does not read or what asks for unbounded
// work, and returns how to open it. Only the identifiers are read here;
// the decryption is the library's.
func pkcs8Scheme(der []byte) (string, func([]byte) ([]byte, string, bool), error) {
	// Not the block's label: an answer that says "PRIVATE KEY" looks like
	// PEM material to whoever scans answers for it.
	malformed := bundleErrorf("the private key is encrypted, but its PKCS#8 encrypted block cannot be parsed")
	var info encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) != 0 {
		return "", nil, malformed
	}
	alg := info.Algorithm.Algorithm
	if !alg.Equal(oidPBES2) {
		name := "an unknown scheme (" + alg.String() + ")"
		if hasPrefix(alg, oidPKCS5PBES1) || hasPrefix(alg, oidPKCS12PBE) {
			n, ok := pbes1Name[alg.String()]
			if !ok {
				n = alg.String()
			}
			name = "PKCS#8 PBES1 (" + n + ")"
		}
		return "", nil, &KeyError{reason: refusedUnsupported, scheme: name}
	}
	var p pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &p); err != nil {
		return "", nil, malformed
	}
	cipherName, ok := pkcs8CipherName[p.Scheme.Algorithm.String()]
	if !ok {
		return "", nil, &KeyError{reason: refusedUnsupported, scheme: "PKCS#8 PBES2 with the cipher " + p.Scheme.Algorithm.String()}
	}
	var iv []byte
	if hasPrefix(p.Scheme.Algorithm, oidAESPrefix) && strings.HasSuffix(cipherName, "-CBC") || p.Scheme.Algorithm.Equal(oidDESEDE3CBC) {
		// The library's CBC would panic on a wrong IV length or a
		// ciphertext that is not whole blocks.
		blockSize := 16
		if p.Scheme.Algorithm.Equal(oidDESEDE3CBC) {
			blockSize = 8
		}
		if _, err := asn1.Unmarshal(p.Scheme.Parameters.FullBytes, &iv); err != nil || len(iv) != blockSize || len(info.Data) == 0 || len(info.Data)%blockSize != 0 {
			return "", nil, malformed
		}
	}
	var kdf string
	switch {
	case p.KDF.Algorithm.Equal(oidPBKDF2):
		var kp pbkdf2Params
		if _, err := asn1.Unmarshal(p.KDF.Parameters.FullBytes, &kp); err != nil || kp.Iterations <= 0 {
			return "", nil, malformed
		}
		prf := kp.PRF.Algorithm
		if len(prf) == 0 {
			prf = oidHMACSHA1
		}
		name, known := hmacName[prf.String()]
		if !known {
			name = prf.String()
		}
		kdf = "PBKDF2 " + name
		if !prf.Equal(oidHMACSHA1) && !prf.Equal(oidHMACSHA256) {
			return "", nil, &KeyError{reason: refusedUnsupported, scheme: "PKCS#8 PBES2 (" + kdf + ", " + cipherName + ")"}
		}
		if kp.Iterations > maxPBKDF2Iterations {
			return "", nil, &KeyError{reason: refusedWork, scheme: fmt.Sprintf("PKCS#8 PBES2 (%s, %d iterations, %s)", kdf, kp.Iterations, cipherName),
				bound: fmt.Sprintf("PBKDF2: at most %d iterations", maxPBKDF2Iterations)}
		}
	case p.KDF.Algorithm.Equal(oidScrypt):
		var sp scryptParams
		if _, err := asn1.Unmarshal(p.KDF.Parameters.FullBytes, &sp); err != nil || sp.Cost <= 1 || sp.Cost&(sp.Cost-1) != 0 || sp.Block <= 0 || sp.Parallelism <= 0 {
			return "", nil, malformed
		}
		kdf = "scrypt"
		if sp.Cost > maxScryptMemory/128/sp.Block || sp.Parallelism > maxScryptWork/sp.Cost/sp.Block {
			return "", nil, &KeyError{reason: refusedWork,
				scheme: fmt.Sprintf("PKCS#8 PBES2 (scrypt N=%d r=%d p=%d, %s)", sp.Cost, sp.Block, sp.Parallelism, cipherName),
				bound:  fmt.Sprintf("scrypt: N x r x p at most %d, N x r at most %d (%d MiB)", maxScryptWork, maxScryptMemory/128, maxScryptMemory>>20)}
		}
	default:
		return "", nil, &KeyError{reason: refusedUnsupported, scheme: "PKCS#8 PBES2 with the key derivation " + p.KDF.Algorithm.String()}
	}
	scheme := "PKCS#8 PBES2 (" + kdf + ", " + cipherName + ")"
	return scheme, func(pass []byte) (out []byte, label string, ok bool) {
		defer func() {
			if recover() != nil {
				// A structure the checks above let through and the
				// library cannot take: not the passphrase's fault, but
				// nothing this engine can decrypt either.
				out, ok = nil, false
			}
		}()
		key, err := pkcs8.ParsePKCS8PrivateKey(der, pass)
		if err != nil {
			return nil, "", false
		}
		inner, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, "", false
		}
		return inner, "PRIVATE KEY", true
	}, nil
}

func hasPrefix(oid, prefix asn1.ObjectIdentifier) bool {
	return len(oid) > len(prefix) && oid[:len(prefix)].Equal(prefix)
}

// isEncryptedKeyError reports whether err is an encrypted key the engine
// cannot open, and returns it.
func AsKeyError(err error) (*KeyError, bool) {
	var ek *KeyError
	ok := errors.As(err, &ek)
	return ek, ok
}
