package nhncert

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/helper/certutil"

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
