package certfile

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

func TestParseBundleEachKeyType(t *testing.T) {
	fx := fixture.LoadBundle(t)
	for _, kt := range emulator.KeyTypes {
		for _, keyFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/keyFirst=%v", kt, keyFirst), func(t *testing.T) {
				c := fx.Chains[kt]
				bn, err := Parse(c.PEMFile(emulator.FileOptions{KeyFirst: keyFirst}), nil)
				require.NoError(t, err)
				require.Equal(t, fixture.KeyTypeWant[kt], bn.KeyType)
				orig := fixture.FirstBlock(t, c.KeyPEM)
				require.Equal(t, kt.PEMBlockType(), bn.KeyBlock.Type)
				require.Equal(t, orig.Type, bn.KeyBlock.Type)
				require.Equal(t, orig.Bytes, bn.KeyBlock.Bytes, "key block bytes must be kept as the file had them")
				require.Empty(t, bn.KeyBlock.Headers)
				require.True(t, bn.Leaf.Equal(c.Leaf))
				testkit.RequireKeyMatches(t, bn.Key, bn.Leaf)
				fixture.RequireChain(t, c.CA.Intermediates, bn.Chain)
				require.Empty(t, bn.LeftOut)
			})
		}
	}
}

func TestParseBundleChainOrderAnyFileOrder(t *testing.T) {
	for n := range 4 {
		ca, err := emulator.NewCA(n)
		require.NoError(t, err)
		c, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: fmt.Sprintf("order%d.example.com", n), CA: ca})
		require.NoError(t, err)
		for _, includeRoot := range []bool{false, true} {
			want := append([]*x509.Certificate(nil), ca.Intermediates...)
			if includeRoot {
				want = append(want, ca.Root)
			}
			for _, keyFirst := range []bool{false, true} {
				for seed := range 21 {
					opts := emulator.FileOptions{IncludeRoot: includeRoot, KeyFirst: keyFirst}
					if seed > 0 {
						opts.Shuffle = mrand.New(mrand.NewPCG(uint64(seed), uint64(n)))
					}
					what := fmt.Sprintf("intermediates=%d root=%v keyFirst=%v seed=%d", n, includeRoot, keyFirst, seed)
					bn, err := Parse(c.PEMFile(opts), nil)
					require.NoError(t, err, what)
					require.True(t, bn.Leaf.Equal(c.Leaf), what)
					fixture.RequireChain(t, want, bn.Chain, what)
					require.Empty(t, bn.LeftOut, what)
					if includeRoot {
						require.True(t, bn.Chain[len(bn.Chain)-1].Equal(ca.Root), "root must be last: %s", what)
					}
				}
			}
		}
	}
}

func TestParseBundleLeafAndKeyOnly(t *testing.T) {
	fx := fixture.LoadBundle(t)
	c := fx.Chains[emulator.EC]
	for _, file := range [][]byte{fixture.JoinPEM(c.LeafPEM, c.KeyPEM), fixture.JoinPEM(c.KeyPEM, c.LeafPEM)} {
		bn, err := Parse(file, nil)
		require.NoError(t, err)
		require.True(t, bn.Leaf.Equal(c.Leaf))
		require.Empty(t, bn.Chain)
		require.Empty(t, bn.LeftOut)
	}
}

func TestParseBundleDuplicates(t *testing.T) {
	ca, err := emulator.NewCA(2)
	require.NoError(t, err)
	c, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: "dup.example.com", CA: ca})
	require.NoError(t, err)
	want := []*x509.Certificate{ca.Intermediates[0], ca.Intermediates[1], ca.Root}
	files := map[string][]byte{
		"intermediate twice": fixture.JoinPEM(c.LeafPEM, ca.IntermediatePEMs[0], ca.IntermediatePEMs[0], ca.IntermediatePEMs[1], ca.RootPEM, c.KeyPEM),
		"every CA twice": fixture.JoinPEM(ca.RootPEM, ca.IntermediatePEMs[1], ca.IntermediatePEMs[0], c.LeafPEM,
			ca.IntermediatePEMs[0], ca.IntermediatePEMs[1], ca.RootPEM, c.KeyPEM),
		"leaf twice": fixture.JoinPEM(c.LeafPEM, ca.IntermediatePEMs[0], ca.IntermediatePEMs[1], ca.RootPEM, c.LeafPEM, c.KeyPEM),
	}
	for name, file := range files {
		t.Run(name, func(t *testing.T) {
			bn, err := Parse(file, nil)
			require.NoError(t, err)
			require.True(t, bn.Leaf.Equal(c.Leaf))
			fixture.RequireChain(t, want, bn.Chain)
			require.Empty(t, bn.LeftOut, "a duplicate is not an unrelated certificate")
		})
	}
}

func TestParseBundleUnrelatedCertificate(t *testing.T) {
	fx := fixture.LoadBundle(t)
	c := fx.Chains[emulator.EC]
	stranger := fx.Chains[emulator.Ed25519] // another leaf of the same CA
	cases := map[string]struct {
		extra    []byte
		extraCrt *x509.Certificate
	}{
		"another leaf": {stranger.LeafPEM, stranger.Leaf},
		// Same subject as the real intermediate, other key: only the
		// signature tells them apart, whatever the order.
		"same-name intermediate of another CA": {fx.Other.IntermediatePEMs[0], fx.Other.Intermediates[0]},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			blocks := [][]byte{c.LeafPEM, tc.extra, fx.CA.IntermediatePEMs[0], c.KeyPEM}
			for seed := range 8 {
				r := mrand.New(mrand.NewPCG(uint64(seed), 99))
				r.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
				bn, err := Parse(fixture.JoinPEM(blocks...), nil)
				require.NoError(t, err)
				require.True(t, bn.Leaf.Equal(c.Leaf))
				fixture.RequireChain(t, []*x509.Certificate{fx.CA.Intermediates[0]}, bn.Chain, "seed %d", seed)
				require.Len(t, bn.LeftOut, 1, "seed %d", seed)
				for _, ch := range bn.Chain {
					require.False(t, ch.Equal(tc.extraCrt), "unrelated certificate in the chain")
				}
			}
		})
	}
}

// TestParseBundleIssuerMustHaveSigned: a certificate that has the issuer's
// name but another key did not sign anything in the chain, so it is not
// issuing_ca and not in ca_chain.
func TestParseBundleIssuerMustHaveSigned(t *testing.T) {
	fx := fixture.LoadBundle(t)
	c := fx.Chains[emulator.EC]
	cases := map[string]struct {
		file      []byte
		wantChain []*x509.Certificate
	}{
		// The emulator names every test CA alike, so the other root has
		// exactly the name of fx.CA's root.
		"another CA's root with the root's name": {
			fixture.JoinPEM(c.LeafPEM, fx.CA.IntermediatePEMs[0], fx.Other.RootPEM, c.KeyPEM),
			[]*x509.Certificate{fx.CA.Intermediates[0]},
		},
		"only an intermediate with the issuer's name": {
			fixture.JoinPEM(c.LeafPEM, fx.Other.IntermediatePEMs[0], c.KeyPEM),
			nil,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			bn, err := Parse(tc.file, nil)
			require.NoError(t, err)
			require.Len(t, bn.Chain, len(tc.wantChain), "chain: %s", fixture.DescribeChain(bn.Chain))
			fixture.RequireChain(t, tc.wantChain, bn.Chain)
			require.Len(t, bn.LeftOut, 1)
		})
	}
}

// TestParseBundleSkipsWhatOpenSSLSkips: a block that begins but cannot be
// read (bad base64, END line missing or of another type, DER that is no
// certificate), a second key, or a key under another key's label: OpenSSL's
// tools read such a file, skipping what they cannot use, so the file is
// served, and the response's warnings say what was left out.
func TestParseBundleSkipsWhatOpenSSLSkips(t *testing.T) {
	fx := fixture.LoadBundle(t)
	ec, ed := fx.Chains[emulator.EC], fx.Chains[emulator.Ed25519]
	inter := fx.CA.IntermediatePEMs[0]
	ecFile := ec.PEMFile(emulator.FileOptions{IncludeRoot: true})
	ecKey := fixture.FirstBlock(t, ec.KeyPEM)
	damage := func(p []byte) []byte { return bytes.Replace(p, []byte("\n"), []byte("\n!!"), 2) }
	cases := []struct {
		name      string
		file      []byte
		chain     int    // length of the chain served
		warning   string // in the warnings; "" for none
		keyFormat string
	}{
		{"intermediate with bad base64", fixture.JoinPEM(ec.LeafPEM, damage(inter), ec.KeyPEM), 0, "1 PEM block(s) that cannot be read", "EC PRIVATE KEY"},
		{"intermediate without END line", fixture.JoinPEM(ec.LeafPEM, inter[:len(inter)-30], ec.KeyPEM), 0, "1 PEM block(s) that cannot be read", "EC PRIVATE KEY"},
		{"second key with bad base64", fixture.JoinPEM(ec.PEMFile(emulator.FileOptions{}), damage(ed.KeyPEM)), 1, "1 PEM block(s) that cannot be read", "EC PRIVATE KEY"},
		{"CERTIFICATE block ending as a key", fixture.JoinPEM(ec.LeafPEM, bytes.Replace(inter, []byte("END CERTIFICATE"), []byte("END PRIVATE KEY"), 1), ec.KeyPEM), 0, "1 PEM block(s) that cannot be read", "EC PRIVATE KEY"},
		{"two keys", fixture.JoinPEM(ecFile, ed.KeyPEM), 2, "1 more private key(s) after the one served", "EC PRIVATE KEY"},
		{"same key twice", fixture.JoinPEM(ecFile, ec.KeyPEM), 2, "1 more private key(s)", "EC PRIVATE KEY"},
		{"garbage CERTIFICATE block first", fixture.JoinPEM(fixture.PEMOf("CERTIFICATE", []byte("this is no DER at all")), ecFile), 2, "1 PEM block(s) that cannot be read", "EC PRIVATE KEY"},
		{"key DER as a certificate", fixture.JoinPEM(ec.LeafPEM, fx.CA.IntermediatePEMs[0], fixture.PEMOf("CERTIFICATE", ecKey.Bytes), ec.KeyPEM), 1, "1 PEM block(s) that cannot be read", "EC PRIVATE KEY"},
		{"PKCS#8 key labelled EC", fixture.JoinPEM(ed.LeafPEM, fixture.PEMOf("EC PRIVATE KEY", fixture.FirstBlock(t, ed.KeyPEM).Bytes)), 0, "", "PRIVATE KEY"},
	}
	bin, _ := exec.LookPath("openssl")
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bn, err := Parse(tc.file, nil)
			require.NoError(t, err)
			leaf := ec.Leaf
			if tc.keyFormat == "PRIVATE KEY" {
				leaf = ed.Leaf
			}
			require.True(t, bn.Leaf.Equal(leaf))
			require.Len(t, bn.Chain, tc.chain)
			require.Equal(t, tc.keyFormat, bn.KeyBlock.Type, "served under the label of its real encoding")
			if tc.warning == "" {
				require.Empty(t, bn.Warnings())
			} else {
				require.Contains(t, strings.Join(bn.Warnings(), "\n"), tc.warning)
			}
			for _, w := range bn.Warnings() {
				fixture.RequireNoKeyMaterial(t, w, fx.AllKeyPEMs()...)
			}
			if bin == "" {
				t.Log("SKIPPED the OpenSSL half: openssl is not in PATH")
				return
			}
			o := readWithOpenSSL(t, bin, t.TempDir(), i, tc.file)
			require.True(t, o.accepts(), "OpenSSL reads it too")
			require.Equal(t, o.leaf, bn.Leaf.Raw)
		})
	}
}

// openSSLExport dresses a PEM file the way `openssl pkcs12 -nodes` prints
// one: attribute lines before every block.
func openSSLExport(c *emulator.Chain, fx *fixture.Bundle) []byte {
	var b bytes.Buffer
	b.WriteString("Bag Attributes\n    localKeyID: 01 00 00 00 \n    friendlyName: " + c.Leaf.Subject.CommonName + "\n")
	b.WriteString("subject=CN = " + c.Leaf.Subject.CommonName + "\n\nissuer=O = NHN Cloud Emulator\n\n")
	b.Write(c.LeafPEM)
	b.WriteString("Bag Attributes: <No Attributes>\nsubject=O = NHN Cloud Emulator, CN = Intermediate\n\n")
	b.Write(fx.CA.IntermediatePEMs[0])
	b.WriteString("\n\n# a comment someone added\n")
	b.WriteString("Key Attributes\n    localKeyID: 01 00 00 00 \n    X509v3 Key Usage: 10 \n")
	b.Write(c.KeyPEM)
	b.WriteString("trailing text without newline")
	return b.Bytes()
}

func TestParseBundleTextBetweenBlocks(t *testing.T) {
	fx := fixture.LoadBundle(t)
	for _, kt := range []emulator.KeyType{emulator.EC, emulator.RSA, emulator.Ed25519} {
		c := fx.Chains[kt]
		plain := openSSLExport(c, fx)
		files := map[string][]byte{
			"bag attributes":            plain,
			"bag attributes, CRLF":      bytes.ReplaceAll(plain, []byte("\n"), []byte("\r\n")),
			"CRLF only":                 bytes.ReplaceAll(c.PEMFile(emulator.FileOptions{IncludeRoot: true}), []byte("\n"), []byte("\r\n")),
			"blank lines and BOM":       append([]byte("\xef\xbb\xbf\n\n"), fixture.JoinPEM(c.KeyPEM, []byte("\n\n"), c.LeafPEM, []byte("\n"), fx.CA.IntermediatePEMs[0])...),
			"trailing spaces on frames": bytes.ReplaceAll(c.PEMFile(emulator.FileOptions{}), []byte("-----\n"), []byte("-----  \n")),
		}
		for name, file := range files {
			t.Run(string(kt)+"/"+name, func(t *testing.T) {
				bn, err := Parse(file, nil)
				require.NoError(t, err)
				require.True(t, bn.Leaf.Equal(c.Leaf))
				require.Equal(t, fixture.KeyTypeWant[kt], bn.KeyType)
				require.Equal(t, fixture.FirstBlock(t, c.KeyPEM).Bytes, bn.KeyBlock.Bytes)
				require.NotEmpty(t, bn.Chain)
				require.True(t, bn.Chain[0].Equal(fx.CA.Intermediates[0]))
			})
		}
	}
}

// ecParamsP256 is what `openssl ecparam -name prime256v1 -genkey` writes
// before the key.
const ecParamsP256 = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"

func TestParseBundleECParametersBeforeKey(t *testing.T) {
	fx := fixture.LoadBundle(t)
	c := fx.Chains[emulator.EC]
	for _, file := range [][]byte{
		fixture.JoinPEM(c.LeafPEM, fx.CA.IntermediatePEMs[0], []byte(ecParamsP256), c.KeyPEM),
		fixture.JoinPEM([]byte(ecParamsP256), c.KeyPEM, c.LeafPEM, fx.CA.IntermediatePEMs[0]),
	} {
		bn, err := Parse(file, nil)
		require.NoError(t, err)
		require.Equal(t, "ec", bn.KeyType)
		require.Equal(t, "EC PRIVATE KEY", bn.KeyBlock.Type)
		testkit.RequireKeyMatches(t, bn.Key, bn.Leaf)
		fixture.RequireChain(t, fx.CA.Intermediates, bn.Chain)
	}
}

func TestParseBundleSizeBoundary(t *testing.T) {
	fx := fixture.LoadBundle(t)
	file := fx.Chains[emulator.EC].PEMFile(emulator.FileOptions{})
	pad := bytes.Repeat([]byte("\n"), maxFileSize-len(file))
	_, err := Parse(append(append([]byte(nil), file...), pad...), nil)
	require.NoError(t, err, "a file of exactly maxFileSize bytes is accepted")
}

func TestParseBundleRejectsHostileInput(t *testing.T) {
	fx := fixture.LoadBundle(t)
	ec, ed, rsaC := fx.Chains[emulator.EC], fx.Chains[emulator.Ed25519], fx.Chains[emulator.RSA]
	ecFile := ec.PEMFile(emulator.FileOptions{IncludeRoot: true})
	ecKey := fixture.FirstBlock(t, ec.KeyPEM)

	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	x25519DER, err := x509.MarshalPKCS8PrivateKey(x25519)
	require.NoError(t, err)

	// The whole key PEM cut short: no END line.
	cut := ec.KeyPEM[:len(ec.KeyPEM)/2]

	huge := append(bytes.Repeat([]byte("A"), maxFileSize), ecFile...)

	cases := []struct {
		name string
		data []byte
		want string // a regular expression
	}{
		{"empty", nil, "not a PEM file"},
		{"whitespace", []byte(" \r\n\t\n"), "not a PEM file"},
		{"not PEM", []byte("hello, this is not a certificate\n"), "not a PEM file"},
		{"HTML", []byte("<html><body>502 Bad Gateway</body></html>"), "not a PEM file"},
		{"JSON error body", []byte(`{"header":{"resultCode":52000,"resultMessage":"Certificate name does not exist.","isSuccessful":false},"body":{}}`), "not a PEM file"},
		{"DER instead of PEM", ec.Leaf.Raw, "not a PEM file"},
		{"only a key", ec.KeyPEM, "no certificate"},
		{"only a key and EC parameters", fixture.JoinPEM([]byte(ecParamsP256), ec.KeyPEM), "no certificate"},
		{"only certificates", fixture.JoinPEM(ec.LeafPEM, fx.CA.IntermediatePEMs[0], fx.CA.RootPEM), "no private key"},
		{"key of another certificate", fixture.JoinPEM(ec.LeafPEM, fx.CA.IntermediatePEMs[0], ed.KeyPEM), "does not match the leaf certificate"},
		{"another key first", fixture.JoinPEM(ed.KeyPEM, ecFile), "does not match the leaf certificate"},
		{"key of an unrelated RSA certificate", fixture.JoinPEM(ec.LeafPEM, rsaC.KeyPEM), "does not match the leaf certificate"},
		// An encrypted key that is well formed is refused for its
		// passphrase (encrypted_test.go); one that is not, here.
		{"ENCRYPTED PRIVATE KEY that is no PKCS#8", fixture.JoinPEM(ec.LeafPEM, fx.CA.IntermediatePEMs[0], fixture.PEMOf("ENCRYPTED PRIVATE KEY", ecKey.Bytes)), "the private key is encrypted, but its PKCS#8 encrypted block cannot be parsed"},
		{"truncated EC key DER", fixture.JoinPEM(ec.LeafPEM, fixture.PEMOf("EC PRIVATE KEY", ecKey.Bytes[:len(ecKey.Bytes)/2])), "EC PRIVATE KEY block cannot be parsed"},
		{"truncated RSA key DER", fixture.JoinPEM(rsaC.LeafPEM, fixture.PEMOf("RSA PRIVATE KEY", fixture.FirstBlock(t, rsaC.KeyPEM).Bytes[:300])), "RSA PRIVATE KEY block cannot be parsed"},
		{"truncated PKCS#8 key DER", fixture.JoinPEM(ed.LeafPEM, fixture.PEMOf("PRIVATE KEY", fixture.FirstBlock(t, ed.KeyPEM).Bytes[:20])), "PRIVATE KEY block cannot be parsed"},
		{"key block cut off", fixture.JoinPEM(ec.LeafPEM, fx.CA.IntermediatePEMs[0], cut), "no private key that can be read \\(1 PEM block"},
		{"only garbage certificates", fixture.JoinPEM(fixture.PEMOf("CERTIFICATE", []byte("this is no DER at all")), ec.KeyPEM), "certificate block 1 cannot be parsed"},
		{"no key but a bad one", fixture.JoinPEM(ec.LeafPEM, fixture.PEMOf("PRIVATE KEY", []byte("no key"))), "PRIVATE KEY block cannot be parsed"},
		{"a key under headers", fixture.JoinPEM(ec.LeafPEM, []byte("-----BEGIN EC PRIVATE KEY-----\nComment: by hand\n\n"+base64.StdEncoding.EncodeToString(ecKey.Bytes)+"\n-----END EC PRIVATE KEY-----\n")), "no private key that can be read"},
		{"X25519 key", fixture.JoinPEM(ec.LeafPEM, fixture.PEMOf("PRIVATE KEY", x25519DER)), "unsupported private key type"},
		{"1,000 certificates", fixture.JoinPEM(bytes.Repeat(ec.LeafPEM, 1000), ec.KeyPEM), fmt.Sprintf("more than %d certificates", maxFileCertificates)},
		{"over maxFileSize", huge, fmt.Sprintf("at most %d", maxFileSize)},
		// Each BEGIN without an END is read to the end of the file; the
		// count of BEGIN lines is bounded so that this is not quadratic.
		{"30,000 BEGIN lines without END", fixture.JoinPEM(bytes.Repeat([]byte("-----BEGIN CERTIFICATE-----\n"), 30000), ecFile), fmt.Sprintf("more than %d PEM blocks", maxPEMBlocks)},
	}
	keys := append(fx.AllKeyPEMs(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: x25519DER}))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bn, err := Parse(tc.data, nil)
			require.Error(t, err)
			require.Nil(t, bn)
			var be *Error
			require.True(t, errors.As(err, &be), "error is %T, want *bundleError", err)
			msg := err.Error()
			require.True(t, strings.HasPrefix(msg, "invalid certificate file: "), msg)
			require.Regexp(t, tc.want, msg)
			require.Less(t, len(msg), 300, "error text is short")
			fixture.RequireNoKeyMaterial(t, msg, keys...)
		})
	}
}

func TestParseBundleManyCertificatesRefused(t *testing.T) {
	fx := fixture.LoadBundle(t)
	ec := fx.Chains[emulator.EC]
	file := fixture.JoinPEM(bytes.Repeat(ec.LeafPEM, 1000), ec.KeyPEM)
	require.Less(t, len(file), maxFileSize, "the test must hit the count limit, not the size limit")
	_, err := Parse(file, nil)
	require.ErrorContains(t, err, "more than 32 certificates")

	// Exactly maxFileCertificates is still accepted.
	file = fixture.JoinPEM(bytes.Repeat(ec.LeafPEM, maxFileCertificates), ec.KeyPEM)
	bn, err := Parse(file, nil)
	require.NoError(t, err)
	require.Empty(t, bn.LeftOut)
}
