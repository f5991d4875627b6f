package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

// certFields are the fields of a certificate read, as the contract names
// them.
var certFields = []string{"certificate", "issuing_ca", "ca_chain", "private_key", "private_key_type",
	"serial_number", "common_name", "dns_names", "not_before", "not_after"}

// serialHex formats a serial as Vault PKI does (colon-separated lowercase
// hex), independently of the plugin's code.
func serialHex(n *big.Int) string {
	b := n.Bytes()
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

// parseCertPEM parses s, which must be one PEM CERTIFICATE block and
// nothing else; what names it in failures.
func parseCertPEM(t *testing.T, what, s string) *x509.Certificate {
	t.Helper()
	blocks, rest := testkit.PEMBlocks([]byte(s))
	if len(blocks) != 1 || blocks[0].Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s is not one PEM CERTIFICATE block: %q", what, s)
	}
	c, err := x509.ParseCertificate(blocks[0].Bytes)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return c
}

func parseCertDER(t *testing.T, what, s string) *x509.Certificate {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%s is not base64: %v", what, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return c
}

// checkPEMRead checks a default-format read: every field, the key matches
// the leaf, the chain is in signing order, metadata agrees with the leaf,
// and it holds no lease and no expiration.
func checkPEMRead(t *testing.T, s *api.Secret, name, keyType string, chainLen int) *x509.Certificate {
	t.Helper()
	d := s.Data
	for _, f := range certFields {
		if _, ok := d[f]; !ok {
			t.Errorf("read %s: no field %s", name, f)
		}
	}
	for _, f := range []string{"expiration", "ttl", "lease_duration"} {
		if _, ok := d[f]; ok {
			t.Errorf("read %s: has a %q field next to the certificate (Vault Agent would sleep on it)", name, f)
		}
	}
	if s.LeaseID != "" || s.LeaseDuration != 0 || s.Renewable {
		t.Errorf("read %s: lease %q, duration %d, renewable %v; want none", name, s.LeaseID, s.LeaseDuration, s.Renewable)
	}
	certPEM, keyPEM := str(t, d, "certificate"), str(t, d, "private_key")
	if _, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM)); err != nil {
		t.Errorf("read %s: private_key does not match certificate: %v", name, err)
	}
	leaf := parseCertPEM(t, name+" certificate", certPEM)
	if got := str(t, d, "private_key_type"); got != keyType {
		t.Errorf("read %s: private_key_type %q, want %q", name, got, keyType)
	}
	if got, want := str(t, d, "serial_number"), serialHex(leaf.SerialNumber); got != want {
		t.Errorf("read %s: serial_number %q, leaf has %q", name, got, want)
	}
	if got := str(t, d, "common_name"); got != leaf.Subject.CommonName || got != name {
		t.Errorf("read %s: common_name %q (leaf %q)", name, got, leaf.Subject.CommonName)
	}
	if got := strList(t, d, "dns_names"); fmt.Sprint(got) != fmt.Sprint(leaf.DNSNames) {
		t.Errorf("read %s: dns_names %v, leaf has %v", name, got, leaf.DNSNames)
	}
	for f, want := range map[string]time.Time{"not_before": leaf.NotBefore, "not_after": leaf.NotAfter} {
		got, err := time.Parse(time.RFC3339, str(t, d, f))
		if err != nil || !got.Equal(want) {
			t.Errorf("read %s: %s %q is not RFC 3339 for %s (%v)", name, f, d[f], want, err)
		}
	}
	chain := strList(t, d, "ca_chain")
	if len(chain) != chainLen {
		t.Fatalf("read %s: ca_chain has %d certificates, want %d", name, len(chain), chainLen)
	}
	if chainLen > 0 && str(t, d, "issuing_ca") != chain[0] {
		t.Errorf("read %s: issuing_ca is not ca_chain[0]", name)
	}
	child := leaf
	for i, p := range chain {
		c := parseCertPEM(t, fmt.Sprintf("%s ca_chain[%d]", name, i), p)
		if err := child.CheckSignatureFrom(c); err != nil {
			t.Errorf("read %s: ca_chain[%d] did not sign the certificate before it: %v", name, i, err)
		}
		child = c
	}
	return leaf
}
