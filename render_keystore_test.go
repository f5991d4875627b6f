package nhncert

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	"github.com/stretchr/testify/require"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

// keystoreBundles parses one file per key type (every encoding the
// emulator writes), with the root, so that the keystores hold key, leaf,
// intermediate and root.
func keystoreBundles(t *testing.T) map[emulator.KeyType]*certfile.Bundle {
	t.Helper()
	fx := fixture.LoadBundle(t)
	out := map[emulator.KeyType]*certfile.Bundle{}
	for _, kt := range emulator.KeyTypes {
		bn, err := certfile.Parse(fx.Chains[kt].PEMFile(emulator.FileOptions{IncludeRoot: true}), nil)
		require.NoError(t, err)
		require.Len(t, bn.Chain, 2)
		out[kt] = bn
	}
	return out
}

func TestRenderPKCS12DecodesBack(t *testing.T) {
	for kt, bn := range keystoreBundles(t) {
		for _, enc := range pkcs12EncoderNames() {
			for _, pw := range []string{defaultKeystorePassword, "", "s3cret-패스워드"} {
				t.Run(fmt.Sprintf("%s/%s/%q", kt, enc, pw), func(t *testing.T) {
					b64, err := renderPKCS12(bn, enc, pw)
					require.NoError(t, err)
					pfx, err := base64.StdEncoding.DecodeString(b64)
					require.NoError(t, err)
					key, leaf, cas, err := pkcs12.DecodeChain(pfx, pw)
					require.NoError(t, err)
					require.True(t, leaf.Equal(bn.Leaf))
					fixture.RequireChain(t, bn.Chain, cas)
					s, ok := key.(crypto.Signer)
					require.True(t, ok, "key is %T", key)
					testkit.RequireKeyMatches(t, s, bn.Leaf)

					_, _, _, err = pkcs12.DecodeChain(pfx, pw+"x")
					require.Error(t, err, "another password must not open it")
				})
			}
		}
	}
}

func TestRenderJKSDecodesBack(t *testing.T) {
	for kt, bn := range keystoreBundles(t) {
		for _, tc := range []struct{ alias, pw string }{{defaultJKSAlias, defaultKeystorePassword}, {"MyApp", "another-pw"}, {"1", ""}} {
			t.Run(fmt.Sprintf("%s/%s", kt, tc.alias), func(t *testing.T) {
				b64, err := renderJKS(bn, tc.alias, tc.pw)
				require.NoError(t, err)
				raw, err := base64.StdEncoding.DecodeString(b64)
				require.NoError(t, err)
				ks := keystore.New(keystore.WithCaseExactAliases())
				require.NoError(t, ks.Load(bytes.NewReader(raw), []byte(tc.pw)))
				require.Equal(t, []string{tc.alias}, ks.Aliases(), "one entry, under the alias asked for, case kept")
				e, err := ks.GetPrivateKeyEntry(tc.alias, []byte(tc.pw))
				require.NoError(t, err)
				require.Equal(t, bn.Leaf.NotBefore.UTC(), e.CreationTime.UTC())
				k, err := x509.ParsePKCS8PrivateKey(e.PrivateKey)
				require.NoError(t, err)
				testkit.RequireKeyMatches(t, k.(crypto.Signer), bn.Leaf)
				want := append([]*x509.Certificate{bn.Leaf}, bn.Chain...)
				require.Len(t, e.CertificateChain, len(want))
				for i, c := range e.CertificateChain {
					require.Equal(t, "X509", c.Type)
					require.Equal(t, want[i].Raw, c.Content, "chain[%d]", i)
				}
				require.Error(t, keystore.New().Load(bytes.NewReader(raw), []byte(tc.pw+"x")), "another password must not open it")
			})
		}
	}
}

// The same certificate and parameters give the same keystore: Vault Agent
// and VSO rewrite a file (and restart what uses it) only when it changed.
func TestKeystoresAreStablePerCertificateAndPassword(t *testing.T) {
	bundles := keystoreBundles(t)
	bn, other := bundles[emulator.EC], bundles[emulator.RSA]
	p1, err := renderPKCS12(bn, defaultPKCS12Encoder, "pw")
	require.NoError(t, err)
	p2, err := renderPKCS12(bn, defaultPKCS12Encoder, "pw")
	require.NoError(t, err)
	require.Equal(t, p1, p2)
	p3, err := renderPKCS12(bn, defaultPKCS12Encoder, "pw2")
	require.NoError(t, err)
	require.NotEqual(t, p1, p3)
	p4, err := renderPKCS12(other, defaultPKCS12Encoder, "pw")
	require.NoError(t, err)
	require.NotEqual(t, p1, p4)

	j1, err := renderJKS(bn, "1", "pw")
	require.NoError(t, err)
	j2, err := renderJKS(bn, "1", "pw")
	require.NoError(t, err)
	require.Equal(t, j1, j2)
	j3, err := renderJKS(bn, "1", "pw2")
	require.NoError(t, err)
	require.NotEqual(t, j1, j3)
}

func TestRenderKeystoreErrorsNameNoPassword(t *testing.T) {
	bn := keystoreBundles(t)[emulator.EC]
	_, err := renderPKCS12(bn, "modern2020", "pw")
	require.EqualError(t, err, `pkcs12_encoder must be one of "modern2023", "legacy_des", "legacy_rc2", "modern2026"`)

	const pw = "secret-😀-password"
	_, err = renderPKCS12(bn, defaultPKCS12Encoder, pw)
	require.Error(t, err)
	require.NotContains(t, err.Error(), pw)
	require.NotContains(t, err.Error(), "secret")

	_, err = renderJKS(bn, "", pw)
	require.EqualError(t, err, "jks_private_key_alias must not be empty")
}
