package certfile

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
	"slices"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
)

// The committed seed corpora live in testdata/fuzz/<FuzzName>/; the f.Add
// seeds below are made at start-up (EC and Ed25519 only, to stay quick;
// the RSA files are in the committed corpus).

func FuzzParseBundle(f *testing.F) {
	ca, err := emulator.NewCA(2)
	if err != nil {
		f.Fatal(err)
	}
	ec, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: "fuzz.example.com", CA: ca})
	if err != nil {
		f.Fatal(err)
	}
	ed, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: "*.fuzz.example.com", KeyType: emulator.Ed25519, CA: ca})
	if err != nil {
		f.Fatal(err)
	}
	ecPKCS8, err := emulator.EncodeKey(emulator.ECPKCS8, ec.Key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ec.PEMFile(emulator.FileOptions{}))
	f.Add(ec.PEMFile(emulator.FileOptions{IncludeRoot: true, KeyFirst: true}))
	f.Add(ec.PEMFile(emulator.FileOptions{IncludeRoot: true, Shuffle: mrand.New(mrand.NewPCG(1, 2))}))
	f.Add(ed.PEMFile(emulator.FileOptions{IncludeRoot: true, Shuffle: mrand.New(mrand.NewPCG(3, 4))}))
	f.Add(fixture.JoinPEM(ec.LeafPEM, ca.IntermediatePEMs[0], ca.IntermediatePEMs[1], ecPKCS8))
	f.Add(fixture.JoinPEM(ec.LeafPEM, []byte(ecParamsP256), ec.KeyPEM))
	f.Add(fixture.JoinPEM(ec.LeafPEM, ca.IntermediatePEMs[0], ca.IntermediatePEMs[0], ed.LeafPEM, ec.KeyPEM))
	f.Add(bytes.ReplaceAll(ec.PEMFile(emulator.FileOptions{IncludeRoot: true}), []byte("\n"), []byte("\r\n")))
	f.Add(fixture.JoinPEM(ec.LeafPEM, ed.KeyPEM))
	f.Add(fixture.JoinPEM(ec.LeafPEM, ec.KeyPEM, ed.KeyPEM))
	f.Add([]byte(`{"header":{"resultCode":52000,"resultMessage":"Certificate name does not exist.","isSuccessful":false},"body":{}}`))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	// Encrypted keys the fuzzer's passphrase opens.
	f.Add(ec.PEMFile(emulator.FileOptions{KeyPassphrase: fuzzPassphrase}))
	f.Add(ec.PEMFile(emulator.FileOptions{KeyPassphrase: fuzzPassphrase, KeyEncryption: emulator.KeyLegacy}))

	f.Fuzz(func(t *testing.T, data []byte) {
		checkParseBundle(t, data)
	})
}

// checkParseBundle checks the properties of ParseBundle on any input,
// without a passphrase and with one (an encrypted key is then decrypted).
func checkParseBundle(t *testing.T, data []byte) {
	checkParsed(t, data, nil)
	checkParsed(t, data, func() ([]byte, error) { return []byte(fuzzPassphrase), nil })
}

// fuzzPassphrase is the passphrase the fuzz target tries; it must never
// come back in an error.
const fuzzPassphrase = "fuzz passphrase"

func checkParsed(t *testing.T, data []byte, pass Passphrase) {
	bn, err := Parse(data, pass)
	if err != nil {
		var be *Error
		var ek *KeyError
		if !errors.As(err, &be) && !errors.As(err, &ek) {
			t.Fatalf("error is %T, want *bundleError or *encryptedKeyError: %v", err, err)
		}
		if strings.Contains(err.Error(), fuzzPassphrase) {
			t.Fatalf("error text holds the passphrase: %v", err)
		}
		if bn != nil {
			t.Fatal("a bundle and an error")
		}
		if len(err.Error()) > 1000 {
			t.Fatalf("error text is %d bytes long", len(err.Error()))
		}
		// No line of a key block in the input may come back in the error.
		blocks, _ := testkit.PEMBlocks(data)
		for _, b := range blocks {
			if !strings.Contains(b.Type, "PRIVATE KEY") {
				continue
			}
			enc := base64.StdEncoding.EncodeToString(b.Bytes)
			for i := 0; i+64 <= len(enc); i += 64 {
				if strings.Contains(err.Error(), enc[i:i+64]) {
					t.Fatalf("error text holds key material: %v", err)
				}
			}
		}
		return
	}

	if bn.Leaf == nil || bn.Key == nil || bn.KeyBlock == nil {
		t.Fatalf("incomplete bundle: %+v", bn)
	}
	if !testkit.PublicKeyMatches(bn.Key, bn.Leaf) {
		t.Fatal("the key's public key is not the leaf's")
	}
	switch bn.KeyType {
	case "rsa", "ec", "ed25519":
	default:
		t.Fatalf("KeyType %q", bn.KeyType)
	}
	switch bn.KeyBlock.Type {
	case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY":
	default:
		t.Fatalf("KeyBlock.Type %q", bn.KeyBlock.Type)
	}
	prev := bn.Leaf
	for i, c := range bn.Chain {
		if !bytes.Equal(c.RawSubject, prev.RawIssuer) {
			t.Fatalf("chain[%d] is not the issuer by subject of the certificate before it", i)
		}
		if c.Equal(bn.Leaf) {
			t.Fatalf("chain[%d] is the leaf", i)
		}
		for _, o := range bn.Chain[:i] {
			if o.Equal(c) {
				t.Fatalf("chain[%d] appears twice", i)
			}
		}
		prev = c
	}
	// The leaf, the chain and what was left out are distinct certificates.
	seen := []*x509.Certificate{bn.Leaf}
	for _, c := range append(slices.Clone(bn.Chain), bn.LeftOut...) {
		if slices.ContainsFunc(seen, c.Equal) {
			t.Fatalf("%s is served or left out twice", c.Subject)
		}
		seen = append(seen, c)
	}
	for _, w := range bn.Warnings() {
		if !testkit.IsPrintableText(w) || len(w) > 1500 {
			t.Fatalf("warning is not printable and bounded: %q", w)
		}
	}
}
