package emulator

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

func TestNewCAChains(t *testing.T) {
	for _, n := range []int{0, 2} {
		ca, err := NewCA(n)
		require.NoError(t, err)
		require.Len(t, ca.Intermediates, n)
		require.Len(t, ca.IntermediatePEMs, n)
		require.True(t, ca.Root.IsCA)
		// Intermediates[i] is signed by Intermediates[i+1], the last by Root.
		for i, c := range ca.Intermediates {
			parent := ca.Root
			if i+1 < n {
				parent = ca.Intermediates[i+1]
			}
			require.NoError(t, c.CheckSignatureFrom(parent), "intermediate %d", i)
			p, _ := pem.Decode(ca.IntermediatePEMs[i])
			require.Equal(t, c.Raw, p.Bytes)
		}
		ch, err := GenerateChain(ChainOptions{CommonName: "leaf.example.com", CA: ca})
		require.NoError(t, err)
		issuer := ca.Root
		if n > 0 {
			issuer = ca.Intermediates[0]
		}
		require.NoError(t, ch.Leaf.CheckSignatureFrom(issuer))
		_, err = ch.Leaf.Verify(x509.VerifyOptions{
			DNSName: "leaf.example.com", Roots: ca.CertPool(), Intermediates: ca.IntermediatePool(),
		})
		require.NoError(t, err)
	}
	_, err := NewCA(-1)
	require.Error(t, err)
}

func TestGenerateChainKeyTypes(t *testing.T) {
	ca := sharedTestCA(t)
	for _, kt := range KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			ch, err := GenerateChain(ChainOptions{CommonName: "k.example.com", KeyType: kt, CA: ca})
			require.NoError(t, err)
			require.Equal(t, kt, ch.KeyType)
			b, rest := pem.Decode(ch.KeyPEM)
			require.NotNil(t, b)
			require.Empty(t, rest)
			require.Equal(t, kt.PEMBlockType(), b.Type)

			var key crypto.Signer
			switch kt {
			case RSA:
				require.Equal(t, "RSA PRIVATE KEY", b.Type)
				k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
				require.NoError(t, err)
				require.Equal(t, 2048, k.N.BitLen())
				key = k
			case EC:
				require.Equal(t, "EC PRIVATE KEY", b.Type)
				k, err := x509.ParseECPrivateKey(b.Bytes)
				require.NoError(t, err)
				require.Equal(t, "P-256", k.Curve.Params().Name)
				key = k
			default:
				require.Equal(t, "PRIVATE KEY", b.Type)
				k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
				require.NoError(t, err)
				switch kt {
				case RSAPKCS8:
					require.IsType(t, &rsa.PrivateKey{}, k)
				case ECPKCS8:
					require.IsType(t, &ecdsa.PrivateKey{}, k)
				case Ed25519:
					require.IsType(t, ed25519.PrivateKey{}, k)
				}
				key = k.(crypto.Signer)
			}
			testkit.RequireKeyMatches(t, key, ch.Leaf)
			require.True(t, testkit.PublicKeyMatches(ch.Key, ch.Leaf), "the chain's own key matches its leaf")
			testkit.RequireKeyPEMMatches(t, ch.KeyPEM, ch.Leaf)

			// keyTypeOfPEM recognizes what EncodeKey wrote.
			got, ok := keyTypeOfPEM(b)
			require.True(t, ok)
			require.Equal(t, kt, got)

			// The file a download would serve parses and matches too.
			leaf, certs, keyPEM := splitFile(t, ch.PEMFile(FileOptions{IncludeRoot: true}))
			require.Equal(t, ch.Leaf.Raw, leaf.Raw)
			require.Len(t, certs, 3)
			testkit.RequireKeyPEMMatches(t, keyPEM, leaf)
		})
	}
}

func TestGenerateChainDefaults(t *testing.T) {
	ca := sharedTestCA(t)
	before := time.Now()
	a, err := GenerateChain(ChainOptions{CommonName: "d.example.com", CA: ca})
	require.NoError(t, err)
	b, err := GenerateChain(ChainOptions{CommonName: "d.example.com", CA: ca})
	require.NoError(t, err)

	require.Equal(t, EC, a.KeyType)
	require.Equal(t, []string{"d.example.com"}, a.Leaf.DNSNames)
	require.Equal(t, "d.example.com", a.Leaf.Subject.CommonName)
	require.False(t, a.Leaf.IsCA)
	require.WithinDuration(t, before.Add(-time.Hour), a.Leaf.NotBefore, 5*time.Second)
	require.WithinDuration(t, before.Add(90*24*time.Hour), a.Leaf.NotAfter, 5*time.Second)
	require.NotEqual(t, a.Leaf.SerialNumber, b.Leaf.SerialNumber, "serials must differ")
	require.Equal(t, 1, a.Leaf.SerialNumber.Sign())

	// Default CA: a fresh one with one intermediate.
	c, err := GenerateChain(ChainOptions{CommonName: "fresh.example.com", DNSNames: []string{"x.example.com", "y.example.com"}})
	require.NoError(t, err)
	require.Len(t, c.CA.Intermediates, 1)
	require.NotEqual(t, ca.Root.Raw, c.CA.Root.Raw)
	require.Equal(t, []string{"x.example.com", "y.example.com"}, c.Leaf.DNSNames)

	_, err = GenerateChain(ChainOptions{})
	require.Error(t, err, "CommonName is required")
	_, err = GenerateChain(ChainOptions{CommonName: "x", KeyType: "dsa", CA: ca})
	require.Error(t, err)
	_, err = GenerateChain(ChainOptions{CommonName: "x", CA: &CA{Root: ca.Root, RootPEM: ca.RootPEM}})
	require.Error(t, err, "a CA without keys cannot sign")
}

func TestPEMFileOrders(t *testing.T) {
	ca, err := NewCA(2)
	require.NoError(t, err)
	ch, err := GenerateChain(ChainOptions{CommonName: "o.example.com", CA: ca})
	require.NoError(t, err)
	leaf, i0, i1, root, key := ch.LeafPEM, ca.IntermediatePEMs[0], ca.IntermediatePEMs[1], ca.RootPEM, ch.KeyPEM
	join := func(b ...[]byte) []byte { return bytes.Join(b, nil) }

	require.Equal(t, join(leaf, i0, i1, key), ch.PEMFile(FileOptions{}))
	require.Equal(t, join(leaf, i0, i1, root, key), ch.PEMFile(FileOptions{IncludeRoot: true}))
	require.Equal(t, join(key, leaf, i0, i1), ch.PEMFile(FileOptions{KeyFirst: true}))
	require.Equal(t, join(key, leaf, i0, i1, root), ch.PEMFile(FileOptions{KeyFirst: true, IncludeRoot: true}))

	want := [][]byte{leaf, i0, i1, root, key}
	orders := map[string]bool{}
	r := mrand.New(mrand.NewPCG(1, 2))
	for range 20 {
		f := ch.PEMFile(FileOptions{IncludeRoot: true, Shuffle: r})
		blocks := testkit.RequirePEMBlocks(t, f)
		require.Len(t, blocks, len(want))
		var order []byte
		for _, w := range want {
			n := 0
			for i, b := range blocks {
				if bytes.Equal(pem.EncodeToMemory(b), w) {
					n++
					order = append(order, byte('0'+i))
				}
			}
			require.Equal(t, 1, n, "every block exactly once")
		}
		orders[string(order)] = true
	}
	require.Greater(t, len(orders), 1, "Shuffle should vary the order")
}

func TestFormatSerial(t *testing.T) {
	assert.Equal(t, "01", FormatSerial(big.NewInt(1)))
	assert.Equal(t, "01:00", FormatSerial(big.NewInt(256)))
	assert.Equal(t, "3a:0f:ff", FormatSerial(big.NewInt(0x3a0fff)))
	assert.Equal(t, "", FormatSerial(nil))
}

func TestParseKeyType(t *testing.T) {
	k, err := ParseKeyType("")
	require.NoError(t, err)
	require.Equal(t, EC, k)
	k, err = ParseKeyType("RSA-PKCS8")
	require.NoError(t, err)
	require.Equal(t, RSAPKCS8, k)
	_, err = ParseKeyType("dsa")
	require.Error(t, err)
}
