package nhncert

import (
	"bytes"
	"crypto/sha3"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/helper/certutil"
	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
)

// How a certificate is rendered into a read response, per format.

const (
	formatPEM       = "pem"
	formatDER       = "der"
	formatPEMBundle = "pem_bundle"
	keyFormatPKCS8  = "pkcs8"
)

// renderCert builds a read response from a bundle.
func renderCert(bn *certfile.Bundle, format, keyFormat string) (map[string]any, error) {
	keyBlock := bn.KeyBlock
	if keyFormat == keyFormatPKCS8 {
		der, err := x509.MarshalPKCS8PrivateKey(bn.Key)
		if err != nil {
			return nil, errors.New("cannot convert the private key to PKCS#8")
		}
		keyBlock = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	encodeCert := func(c *x509.Certificate) string { return pemString(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}) }
	key := pemString(keyBlock)
	if format == formatDER {
		encodeCert = func(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }
		key = base64.StdEncoding.EncodeToString(keyBlock.Bytes)
	}

	chain := make([]string, len(bn.Chain))
	for i, c := range bn.Chain {
		chain[i] = encodeCert(c)
	}
	issuing := ""
	if len(chain) > 0 {
		issuing = chain[0]
	}
	certificate := encodeCert(bn.Leaf)
	if format == formatPEMBundle {
		certificate = strings.Join(append([]string{key, certificate}, chain...), "\n")
	}
	dnsNames := bn.Leaf.DNSNames
	if dnsNames == nil {
		dnsNames = []string{}
	}
	data := map[string]any{
		"certificate":      certificate,
		"issuing_ca":       issuing,
		"ca_chain":         chain,
		"private_key":      key,
		"private_key_type": bn.KeyType,
		"serial_number":    certutil.GetHexFormatted(bn.Leaf.SerialNumber.Bytes(), ":"),
		"common_name":      bn.Leaf.Subject.CommonName,
		"dns_names":        dnsNames,
		"not_before":       bn.Leaf.NotBefore.UTC().Format(time.RFC3339),
		"not_after":        bn.Leaf.NotAfter.UTC().Format(time.RFC3339),
	}
	// DER holds one certificate per value: a chain has no DER form in one
	// string, so der answers certificate and ca_chain and no full_chain.
	if format != formatDER {
		data["full_chain"] = fullChain(bn)
	}
	return data, nil
}

// fullChain is the leaf and then its chain without a self-signed root, one
// PEM string: what nginx's ssl_certificate and a Kubernetes tls.crt want.
// A server that sends the root wastes bytes on every handshake, and some
// clients refuse it.
func fullChain(bn *certfile.Bundle) string {
	certs := []string{pemString(&pem.Block{Type: "CERTIFICATE", Bytes: bn.Leaf.Raw})}
	for _, c := range bn.Chain {
		if certfile.IsSelfSigned(c) {
			break
		}
		certs = append(certs, pemString(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return strings.Join(certs, "\n")
}

// pemString encodes a block without headers and without the trailing
// newline, as Vault's PKI engine writes PEM values.
func pemString(b *pem.Block) string {
	return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes})))
}

// The Java-facing formats, format=pkcs12_bundle and format=jks_bundle, with
// the parameter names and defaults of Vault's PKI engine (Vault 2.1): the
// keystore, base64, replaces "certificate"; the key, the leaf and the chain
// are all in it.

const (
	formatPKCS12Bundle = "pkcs12_bundle"
	formatJKSBundle    = "jks_bundle"

	// defaultKeystorePassword is Vault PKI's default for pkcs12_password and
	// jks_password, and the JDK's own default keystore password.
	defaultKeystorePassword = pkcs12.DefaultPassword // "changeit"
	// defaultJKSAlias is Vault PKI's default jks_private_key_alias.
	defaultJKSAlias = "1"

	// defaultPKCS12Encoder deliberately differs from Vault PKI's
	// modern2026: PBMAC1 cannot be read by OpenSSL before 3.4 nor by Java
	// before 26, and this machine image's OpenSSL 3.0 and Java 17 (what
	// most consumers run) both refuse it.
	defaultPKCS12Encoder = "modern2023"
)

// pkcs12Encoders are the profiles go-pkcs12 can write, by the name a
// request gives. The legacy ones are for old readers (Windows before 2019,
// Java before 12, Apple's keychain); OpenSSL 3 reads legacy_rc2 only with
// -legacy.
var pkcs12Encoders = map[string]*pkcs12.Encoder{
	"modern2023": pkcs12.Modern2023,
	"modern2026": pkcs12.Modern2026,
	"legacy_des": pkcs12.LegacyDES,
	"legacy_rc2": pkcs12.LegacyRC2,
}

// pkcs12EncoderNames lists the accepted pkcs12_encoder values, the
// default first, for the schema and for the error that names them.
func pkcs12EncoderNames() []string {
	names := []string{defaultPKCS12Encoder}
	for n := range pkcs12Encoders {
		if n != defaultPKCS12Encoder {
			names = append(names, n)
		}
	}
	slices.Sort(names[1:])
	return names
}

// keystoreOptions are the request's keystore parameters. Passwords are
// never put in an error or a log line.
type keystoreOptions struct {
	pkcs12Password string
	pkcs12Encoder  string
	jksPassword    string
	jksAlias       string
}

// validate checks the parameters format uses, so that a request that
// cannot be answered is refused before anything is downloaded. No error
// quotes a password.
func (o keystoreOptions) validate(format string) error {
	switch format {
	case formatPKCS12Bundle:
		if _, ok := pkcs12Encoders[o.pkcs12Encoder]; !ok {
			return errors.New(`pkcs12_encoder must be one of "` + strings.Join(pkcs12EncoderNames(), `", "`) + `"`)
		}
		if !isUCS2(o.pkcs12Password) {
			// PKCS#12 carries passwords as BMPString (UCS-2).
			return errors.New("pkcs12_password holds a character outside the Basic Multilingual Plane, which PKCS#12 cannot carry")
		}
	case formatJKSBundle:
		if o.jksAlias == "" {
			return errors.New("jks_private_key_alias must not be empty")
		}
	}
	return nil
}

// errKeystore is what a request learns when a keystore cannot be built:
// the library's own error may quote what it was given, so it is not
// passed on.
var errKeystore = errors.New("cannot build the keystore from this certificate file")

// renderPKCS12 encodes the key, the leaf and the chain as a PKCS#12 file,
// base64.
func renderPKCS12(bn *certfile.Bundle, encoder, password string) (string, error) {
	if err := (keystoreOptions{pkcs12Encoder: encoder, pkcs12Password: password}).validate(formatPKCS12Bundle); err != nil {
		return "", err
	}
	pfx, err := pkcs12Encoders[encoder].WithRand(keystoreRand("pkcs12", encoder, password, bn)).Encode(bn.Key, bn.Leaf, bn.Chain, password)
	if err != nil {
		return "", errKeystore
	}
	return base64.StdEncoding.EncodeToString(pfx), nil
}

// renderJKS encodes the key, the leaf and the chain as one PrivateKeyEntry
// of a Java KeyStore, base64. The entry's password is the store's, as
// keytool and Vault PKI make it.
func renderJKS(bn *certfile.Bundle, alias, password string) (string, error) {
	if err := (keystoreOptions{jksAlias: alias}).validate(formatJKSBundle); err != nil {
		return "", err
	}
	key, err := x509.MarshalPKCS8PrivateKey(bn.Key)
	if err != nil {
		return "", errKeystore
	}
	chain := []keystore.Certificate{{Type: "X509", Content: bn.Leaf.Raw}}
	for _, c := range bn.Chain {
		chain = append(chain, keystore.Certificate{Type: "X509", Content: c.Raw})
	}
	// Aliases are case-sensitive, as Vault PKI documents them.
	ks := keystore.New(keystore.WithCaseExactAliases(),
		keystore.WithCustomRandomNumberGenerator(keystoreRand("jks", alias, password, bn)))
	pw := []byte(password)
	entry := keystore.PrivateKeyEntry{
		// The leaf's start of validity, not the time of the read: the
		// same certificate gives the same keystore.
		CreationTime:     bn.Leaf.NotBefore.UTC(),
		PrivateKey:       key,
		CertificateChain: chain,
	}
	if err := ks.SetPrivateKeyEntry(alias, entry, pw); err != nil {
		return "", errKeystore
	}
	var out bytes.Buffer
	if err := ks.Store(&out, pw); err != nil {
		return "", errKeystore
	}
	return base64.StdEncoding.EncodeToString(out.Bytes()), nil
}

// keystoreRand is the source of the keystore's salts and IVs: a SHAKE256
// stream seeded from the certificate file's content and the request's
// parameters, so that reading the same certificate with the same password
// gives the same bytes. Vault Agent rewrites a file, and VSO restarts
// workloads, only when what they read changed; fresh random salts would
// make every re-read a change. The stream reveals nothing of its seed;
// equal keystores only tell that they hold the same certificate under the
// same password, which the reader of either knows anyway.
func keystoreRand(kind, param, password string, bn *certfile.Bundle) io.Reader {
	h := sha3.NewSHAKE256()
	key, _ := x509.MarshalPKCS8PrivateKey(bn.Key)
	for _, part := range [][]byte{[]byte("nhncert keystore v1"), []byte(kind), []byte(param), []byte(password), bn.Leaf.Raw, key} {
		// Length-prefixed, so that no two parameter sets give one seed.
		n := len(part)
		_, _ = h.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		_, _ = h.Write(part)
	}
	for _, c := range bn.Chain {
		_, _ = h.Write(c.Raw)
	}
	return h
}

func isUCS2(s string) bool {
	for _, r := range s {
		if r > 0xFFFF {
			return false
		}
	}
	return true
}

// renderKeystore is the response of format=pkcs12_bundle or jks_bundle:
// the PEM response, with the keystore in "certificate" where Vault PKI
// puts it. The other fields stay PEM, for templates that want both.
func renderKeystore(bn *certfile.Bundle, format, keyFormat string, o keystoreOptions) (map[string]any, error) {
	data, err := renderCert(bn, formatPEM, keyFormat)
	if err != nil {
		return nil, err
	}
	var ks string
	if format == formatPKCS12Bundle {
		ks, err = renderPKCS12(bn, o.pkcs12Encoder, o.pkcs12Password)
	} else {
		ks, err = renderJKS(bn, o.jksAlias, o.jksPassword)
	}
	if err != nil {
		return nil, err
	}
	data["certificate"] = ks
	return data, nil
}

func stringsToAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
