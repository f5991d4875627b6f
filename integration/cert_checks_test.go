package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	one := len(blocks) == 1 && blocks[0].Type == "CERTIFICATE" && len(bytes.TrimSpace(rest)) == 0
	require.True(t, one, "%s is not one PEM CERTIFICATE block: %q", what, s)
	c, err := x509.ParseCertificate(blocks[0].Bytes)
	require.NoError(t, err, what)
	return c
}

func parseCertDER(t *testing.T, what, s string) *x509.Certificate {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(s)
	require.NoError(t, err, "%s is not base64", what)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err, what)
	return c
}

// checkPEMRead checks a default-format read: every field, the key matches
// the leaf, the chain is in signing order, metadata agrees with the leaf,
// and it holds no lease and no expiration.
func checkPEMRead(t *testing.T, s *api.Secret, name, keyType string, chainLen int) *x509.Certificate {
	t.Helper()
	d := s.Data
	// The field names only: the values hold the private key.
	fields := slices.Sorted(maps.Keys(d))
	assert.Subset(t, fields, certFields, "read %s: a field is missing", name)
	for _, f := range []string{"expiration", "lease_duration"} {
		assert.NotContains(t, fields, f, "read %s: has a %q field next to the certificate (Vault Agent would sleep on it)", name, f)
	}
	checkRotationFields(t, "read "+name, d)
	lease := fmt.Sprintf("read %s: lease %q, duration %d, renewable %v; want none", name, s.LeaseID, s.LeaseDuration, s.Renewable)
	assert.Empty(t, s.LeaseID, lease)
	assert.Zero(t, s.LeaseDuration, lease)
	assert.False(t, s.Renewable, lease)
	certPEM, keyPEM := str(t, d, "certificate"), str(t, d, "private_key")
	_, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	assert.NoError(t, err, "read %s: private_key does not match certificate", name)
	leaf := parseCertPEM(t, name+" certificate", certPEM)
	assert.Equal(t, keyType, str(t, d, "private_key_type"), "read %s: private_key_type", name)
	assert.Equal(t, serialHex(leaf.SerialNumber), str(t, d, "serial_number"), "read %s: serial_number is not the leaf's", name)
	cn := str(t, d, "common_name")
	assert.Equal(t, leaf.Subject.CommonName, cn, "read %s: common_name is not the leaf's", name)
	assert.Equal(t, name, cn, "read %s: common_name is not the name read", name)
	assert.Equal(t, fmt.Sprint(leaf.DNSNames), fmt.Sprint(strList(t, d, "dns_names")), "read %s: dns_names are not the leaf's", name)
	for f, want := range map[string]time.Time{"not_before": leaf.NotBefore, "not_after": leaf.NotAfter} {
		got, err := time.Parse(time.RFC3339, str(t, d, f))
		if assert.NoError(t, err, "read %s: %s %q is not RFC 3339", name, f, d[f]) {
			assert.WithinDuration(t, want, got, 0, "read %s: %s %q is not the leaf's %s", name, f, d[f], want)
		}
	}
	chain := strList(t, d, "ca_chain")
	require.Len(t, chain, chainLen, "read %s: ca_chain", name)
	if chainLen > 0 {
		assert.Equal(t, chain[0], str(t, d, "issuing_ca"), "read %s: issuing_ca is not ca_chain[0]", name)
	}
	child := leaf
	for i, p := range chain {
		c := parseCertPEM(t, fmt.Sprintf("%s ca_chain[%d]", name, i), p)
		assert.NoError(t, child.CheckSignatureFrom(c), "read %s: ca_chain[%d] did not sign the certificate before it", name, i)
		child = c
	}
	return leaf
}

// checkRotationFields checks the static-secret rotation fields as Vault
// Agent and VSO read them: ttl and rotation_period JSON integers (the API
// client decodes numbers as json.Number; consul-template asserts it),
// ttl at least 3, last_vault_rotation RFC 3339 with fractional seconds.
func checkRotationFields(t *testing.T, what string, d map[string]any) {
	t.Helper()
	for f, least := range map[string]int64{"ttl": 3, "rotation_period": 1} {
		n, ok := d[f].(json.Number)
		if !assert.True(t, ok, "%s: %s is %T (%v), want a JSON number", what, f, d[f], d[f]) {
			continue
		}
		i, err := n.Int64()
		if assert.NoError(t, err, "%s: %s %q is not an integer", what, f, n) {
			assert.GreaterOrEqual(t, i, least, "%s: %s", what, f)
		}
	}
	_, err := time.Parse(time.RFC3339Nano, str(t, d, "last_vault_rotation"))
	assert.NoError(t, err, "%s: last_vault_rotation", what)
}
