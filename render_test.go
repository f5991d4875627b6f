package nhncert

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

func TestRenderCertFormats(t *testing.T) {
	fx := fixture.LoadBundle(t)
	for _, kt := range emulator.KeyTypes {
		c := fx.Chains[kt]
		bn, err := certfile.Parse(c.PEMFile(emulator.FileOptions{IncludeRoot: true, KeyFirst: true}), nil)
		require.NoError(t, err)
		chain := []*x509.Certificate{fx.CA.Intermediates[0], fx.CA.Root}
		fixture.RequireChain(t, chain, bn.Chain)
		for _, format := range []string{formatPEM, formatDER, formatPEMBundle} {
			for _, keyFormat := range []string{"", keyFormatPKCS8} {
				t.Run(fmt.Sprintf("%s/%s/%q", kt, format, keyFormat), func(t *testing.T) {
					d, err := renderCert(bn, format, keyFormat)
					require.NoError(t, err)
					checkRendered(t, d, c, chain, format, keyFormat)
				})
			}
		}
	}
}

func checkRendered(t *testing.T, d map[string]any, c *emulator.Chain, chain []*x509.Certificate, format, keyFormat string) {
	t.Helper()
	require.NotContains(t, d, "expiration", "no numeric expiration next to the certificate")
	require.Equal(t, fixture.KeyTypeWant[c.KeyType], d["private_key_type"])
	require.Equal(t, emulator.FormatSerial(c.Leaf.SerialNumber), d["serial_number"])
	require.Equal(t, c.Leaf.Subject.CommonName, d["common_name"])
	require.Equal(t, c.Leaf.DNSNames, d["dns_names"])
	require.Equal(t, c.Leaf.NotBefore.UTC().Format(time.RFC3339), d["not_before"])
	require.Equal(t, c.Leaf.NotAfter.UTC().Format(time.RFC3339), d["not_after"])

	origKey := fixture.FirstBlock(t, c.KeyPEM)
	wantKeyType := origKey.Type
	if keyFormat == keyFormatPKCS8 {
		wantKeyType = "PRIVATE KEY"
	}
	// checkKeyDER checks the key's DER: as stored, or a PKCS#8 form of the
	// same key.
	checkKeyDER := func(der []byte) {
		t.Helper()
		if keyFormat == "" {
			require.Equal(t, origKey.Bytes, der)
			return
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		require.NoError(t, err, "pkcs8 key parses")
		s, ok := k.(crypto.Signer)
		require.True(t, ok)
		testkit.RequireKeyMatches(t, s, c.Leaf)
	}
	decodePEM := func(s string, typ string) []byte {
		t.Helper()
		b, rest := pem.Decode([]byte(s))
		require.NotNil(t, b, "not PEM: %q", s)
		require.Equal(t, typ, b.Type)
		require.Empty(t, bytes.TrimSpace(rest), "one block only")
		return b.Bytes
	}
	caChain, ok := d["ca_chain"].([]string)
	require.True(t, ok, "ca_chain is %T", d["ca_chain"])
	require.Len(t, caChain, len(chain))

	// full_chain: the leaf, then the chain without its self-signed root;
	// no DER form.
	if format == formatDER {
		require.NotContains(t, d, "full_chain")
	} else {
		blocks := testkit.RequirePEMBlocks(t, []byte(d["full_chain"].(string)))
		want := [][]byte{c.Leaf.Raw}
		for _, cc := range chain {
			if !bytes.Equal(cc.RawSubject, cc.RawIssuer) {
				want = append(want, cc.Raw)
			}
		}
		require.Len(t, blocks, len(want), "full_chain: leaf and intermediates, no root")
		for i, b := range blocks {
			require.Equal(t, "CERTIFICATE", b.Type)
			require.Equal(t, want[i], b.Bytes, "full_chain[%d]", i)
		}
	}

	switch format {
	case formatDER:
		leafDER, err := base64.StdEncoding.DecodeString(d["certificate"].(string))
		require.NoError(t, err)
		require.Equal(t, c.Leaf.Raw, leafDER)
		for i, s := range caChain {
			der, err := base64.StdEncoding.DecodeString(s)
			require.NoError(t, err)
			require.Equal(t, chain[i].Raw, der)
		}
		issuing, err := base64.StdEncoding.DecodeString(d["issuing_ca"].(string))
		require.NoError(t, err)
		require.Equal(t, chain[0].Raw, issuing)
		keyDER, err := base64.StdEncoding.DecodeString(d["private_key"].(string))
		require.NoError(t, err)
		checkKeyDER(keyDER)
	case formatPEM, formatPEMBundle:
		for i, s := range caChain {
			require.Equal(t, chain[i].Raw, decodePEM(s, "CERTIFICATE"))
		}
		require.Equal(t, caChain[0], d["issuing_ca"])
		key := d["private_key"].(string)
		checkKeyDER(decodePEM(key, wantKeyType))
		if keyFormat == "" {
			require.Equal(t, strings.TrimSpace(string(c.KeyPEM)), key, "key as the file had it")
		}
		if format == formatPEM {
			require.Equal(t, c.Leaf.Raw, decodePEM(d["certificate"].(string), "CERTIFICATE"))
			return
		}
		// pem_bundle: key, leaf, then the chain, in that order.
		blocks := testkit.RequirePEMBlocks(t, []byte(d["certificate"].(string)))
		require.Len(t, blocks, 2+len(chain))
		require.Equal(t, wantKeyType, blocks[0].Type)
		checkKeyDER(blocks[0].Bytes)
		require.Equal(t, "CERTIFICATE", blocks[1].Type)
		require.Equal(t, c.Leaf.Raw, blocks[1].Bytes)
		for i, cc := range chain {
			require.Equal(t, "CERTIFICATE", blocks[2+i].Type)
			require.Equal(t, cc.Raw, blocks[2+i].Bytes, "bundle chain[%d]", i)
		}
	default:
		t.Fatalf("unknown format %q", format)
	}
}

// TestRenderLeafAndKeyOnly: a file of a leaf and its key alone renders with
// no issuing_ca and no chain.
func TestRenderLeafAndKeyOnly(t *testing.T) {
	fx := fixture.LoadBundle(t)
	c := fx.Chains[emulator.EC]
	for _, file := range [][]byte{fixture.JoinPEM(c.LeafPEM, c.KeyPEM), fixture.JoinPEM(c.KeyPEM, c.LeafPEM)} {
		bn, err := certfile.Parse(file, nil)
		require.NoError(t, err)
		d, err := renderCert(bn, formatPEM, "")
		require.NoError(t, err)
		require.Equal(t, "", d["issuing_ca"])
		require.Empty(t, d["ca_chain"])
	}
}
