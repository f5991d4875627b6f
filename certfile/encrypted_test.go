package certfile

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
)

// Encrypted keys as the real openssl binary writes them, one file per form
// and cipher: the engine opens each with the right passphrase (and serves
// the key in the form inside the encryption), refuses each without one or
// with a wrong one, and decrypts exactly when `openssl pkey -passin` does.

// testKeyPassphrase is not ASCII: a passphrase is bytes, passed on as they
// are, as OpenSSL does for PBES2 and the legacy form.
const testKeyPassphrase = "correct horse ✓ battery"

// encryptedCase is one file whose key openssl encrypted.
type encryptedCase struct {
	name      string // how openssl was asked
	kt        emulator.KeyType
	file      []byte // leaf, intermediate, encrypted key
	wantLabel string // the served key's block: the encoding inside the encryption
	// unsupported is set for the schemes OpenSSL reads and youmark/pkcs8
	// does not (PBES1, a PRF other than HMAC-SHA1/SHA256) and legacy
	// ciphers other than AES and DES: the engine names the scheme instead.
	unsupported bool
}

var (
	encryptedCasesOnce sync.Once
	encryptedCasesVal  []encryptedCase
	encryptedCasesErr  error
)

// encryptedCases makes the files once per test binary: 27 runs of openssl,
// about a second in all.
func encryptedCases(t *testing.T) []encryptedCase {
	t.Helper()
	bin := opensslBinary(t)
	fx := fixture.LoadBundle(t)
	encryptedCasesOnce.Do(func() { encryptedCasesVal, encryptedCasesErr = makeEncryptedCases(bin, fx) })
	if encryptedCasesErr != nil {
		t.Fatalf("making encrypted keys with openssl: %v", encryptedCasesErr)
	}
	return encryptedCasesVal
}

func makeEncryptedCases(bin string, fx *fixture.Bundle) ([]encryptedCase, error) {
	dir, err := os.MkdirTemp("", "nhncert-enc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	pass := "pass:" + testKeyPassphrase
	type spec struct {
		kt          emulator.KeyType
		args        []string // after "-in <plain key>"
		label       string
		unsupported bool
	}
	var specs []spec
	for _, c := range []string{"-aes128", "-aes192", "-aes256", "-des3"} {
		specs = append(specs,
			spec{emulator.RSA, []string{"rsa", "-traditional", c}, "RSA PRIVATE KEY", false},
			spec{emulator.EC, []string{"ec", c}, "EC PRIVATE KEY", false})
	}
	for _, c := range []string{"aes-128-cbc", "aes-192-cbc", "aes-256-cbc", "des3"} {
		for _, kt := range []emulator.KeyType{emulator.RSA, emulator.EC, emulator.Ed25519} {
			specs = append(specs, spec{kt, []string{"pkcs8", "-topk8", "-v2", c}, "PRIVATE KEY", false})
		}
	}
	specs = append(specs,
		spec{emulator.EC, []string{"pkcs8", "-topk8", "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA1"}, "PRIVATE KEY", false},
		spec{emulator.EC, []string{"pkcs8", "-topk8", "-scrypt"}, "PRIVATE KEY", false},
		// What `openssl genpkey -aes256` writes: pkey's default PBES2.
		spec{emulator.Ed25519, []string{"pkey", "-aes256"}, "PRIVATE KEY", false},
		spec{emulator.EC, []string{"pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES"}, "", true},
		spec{emulator.EC, []string{"pkcs8", "-topk8", "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512"}, "", true},
		spec{emulator.EC, []string{"ec", "-camellia256"}, "", true},
	)
	var out []encryptedCase
	for i, sp := range specs {
		ch := fx.Chains[sp.kt]
		in := filepath.Join(dir, fmt.Sprintf("plain%d.pem", i))
		if err := os.WriteFile(in, ch.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		args := append(append([]string{sp.args[0], "-in", in}, sp.args[1:]...), "-passout", pass)
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		key, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("openssl %s: %v: %s", strings.Join(sp.args, " "), err, stderr.String())
		}
		out = append(out, encryptedCase{
			name:        string(sp.kt) + " " + strings.Join(sp.args, " "),
			kt:          sp.kt,
			file:        fixture.JoinPEM(ch.LeafPEM, fx.CA.IntermediatePEMs[0], key),
			wantLabel:   sp.label,
			unsupported: sp.unsupported,
		})
	}
	return out, nil
}

func fixedPassphrase(p string) Passphrase {
	return func() ([]byte, error) { return []byte(p), nil }
}

// requireRefused requires err to be an encrypted key refused for reason,
// naming nothing secret.
func requireRefused(t *testing.T, err error, reason keyRefusal, fx *fixture.Bundle) *KeyError {
	t.Helper()
	ek, ok := AsKeyError(err)
	require.True(t, ok, "want an encrypted key refused, got %v", err)
	require.Equal(t, reason, ek.reason, "%v", err)
	require.NotContains(t, err.Error(), testKeyPassphrase)
	require.NotContains(t, err.Error(), "wrong passphrase value")
	fixture.RequireNoKeyMaterial(t, err.Error(), fx.AllKeyPEMs()...)
	return ek
}

func TestEncryptedKeysFromOpenSSL(t *testing.T) {
	cases := encryptedCases(t)
	fx := fixture.LoadBundle(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// No passphrase set: refused, naming the scheme and where to
			// write one (unsupported schemes say so instead).
			_, err := Parse(tc.file, nil)
			if tc.unsupported {
				ek := requireRefused(t, err, refusedUnsupported, fx)
				require.Contains(t, err.Error(), "cannot decrypt")
				require.NotEmpty(t, ek.scheme)
				_, err = Parse(tc.file, fixedPassphrase(testKeyPassphrase))
				requireRefused(t, err, refusedUnsupported, fx)
				return
			}
			requireRefused(t, err, refusedNoPassphrase, fx)
			require.Contains(t, err.Error(), "no passphrase is set")
			require.Contains(t, err.Error(), "passphrases/")

			_, err = Parse(tc.file, fixedPassphrase("wrong passphrase value"))
			requireRefused(t, err, refusedWrongPassphrase, fx)
			require.Contains(t, err.Error(), "does not decrypt the private key")

			bn, err := Parse(tc.file, fixedPassphrase(testKeyPassphrase))
			require.NoError(t, err)
			want := fx.Chains[tc.kt]
			require.True(t, bn.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(want.Key.Public()), "the decrypted key is the file's")
			require.True(t, bn.Leaf.Equal(want.Leaf))
			require.True(t, bn.KeyEncrypted)
			require.Zero(t, bn.Skipped, "the encrypted block is the key, not a skipped block")
			require.Equal(t, tc.wantLabel, bn.KeyBlock.Type, "served in the form inside the encryption")
			require.Empty(t, bn.KeyBlock.Headers)
			_, err = parsePrivateKey(bn.KeyBlock)
			require.NoError(t, err)
			if tc.wantLabel != "PRIVATE KEY" {
				require.Equal(t, fixture.FirstBlock(t, want.KeyPEM).Bytes, bn.KeyBlock.Bytes, "a legacy key decrypts to the file's own PKCS#1 or SEC1 bytes")
			}
		})
	}
}

// TestEncryptedKeysAsOpenSSLDecrypts is the differential check: for every
// file and passphrase (the right one, wrong ones, near misses) the engine
// opens the key exactly when `openssl pkey -passin` does, and then the
// same key; the only exceptions are the schemes the engine names as
// unsupported, which OpenSSL reads.
func TestEncryptedKeysAsOpenSSLDecrypts(t *testing.T) {
	cases := encryptedCases(t)
	bin := opensslBinary(t)
	dir := t.TempDir()
	passphrases := []string{testKeyPassphrase, "wrong passphrase value", testKeyPassphrase + "x", strings.ToUpper(testKeyPassphrase), testKeyPassphrase[:5]}
	type result struct {
		openssl []byte // public key DER; nil when openssl refused
		engine  []byte
		err     error
	}
	results := make([][]result, len(cases))
	var g errgroup.Group
	g.SetLimit(2)
	began := time.Now()
	for i, tc := range cases {
		results[i] = make([]result, len(passphrases))
		path := filepath.Join(dir, fmt.Sprintf("f%02d.pem", i))
		require.NoError(t, os.WriteFile(path, tc.file, 0o600))
		for j, p := range passphrases {
			g.Go(func() error {
				cmd := exec.Command(bin, "pkey", "-in", path, "-passin", "pass:"+p, "-pubout", "-outform", "DER")
				var r result
				if out, err := cmd.Output(); err == nil {
					r.openssl = out
				}
				bn, err := Parse(tc.file, fixedPassphrase(p))
				if err == nil {
					r.engine, err = x509.MarshalPKIXPublicKey(bn.Key.Public())
				}
				r.err = err
				results[i][j] = r
				return nil
			})
		}
	}
	require.NoError(t, g.Wait())
	t.Logf("%d files x %d passphrases checked against openssl in %v", len(cases), len(passphrases), time.Since(began).Round(time.Millisecond))
	var unsupported []string
	for i, tc := range cases {
		for j, p := range passphrases {
			r := results[i][j]
			what := fmt.Sprintf("%s with passphrase #%d", tc.name, j)
			if ek, ok := AsKeyError(r.err); ok && ek.reason == refusedUnsupported {
				require.True(t, tc.unsupported, "%s: refused as unsupported: %v", what, r.err)
				if r.openssl != nil {
					unsupported = append(unsupported, ek.scheme)
				}
				continue
			}
			require.Equal(t, r.openssl != nil, r.err == nil, "%s: openssl decrypts: %v; the engine: %v", what, r.openssl != nil, r.err)
			if r.err == nil {
				require.Equal(t, r.openssl, r.engine, "%s: the same key", what)
				require.Equal(t, testKeyPassphrase, p)
			} else {
				var ek *KeyError
				require.True(t, errors.As(r.err, &ek) && ek.reason == refusedWrongPassphrase, "%s: %v", what, r.err)
			}
		}
	}
	t.Logf("read by OpenSSL, named unsupported by the engine: %v", unsupported)
}

func TestEncryptedKeyNextToAPlainOne(t *testing.T) {
	cases := encryptedCases(t)
	fx := fixture.LoadBundle(t)
	ec := fx.Chains[emulator.EC]
	for _, tc := range cases {
		if tc.kt != emulator.EC || tc.unsupported {
			continue
		}
		// The plain key is served, as before passphrases: no passphrase is
		// asked for, the encrypted block is skipped with the warning.
		enc := tc.file[len(fixture.JoinPEM(ec.LeafPEM, fx.CA.IntermediatePEMs[0])):]
		asked := false
		bn, err := Parse(fixture.JoinPEM(ec.LeafPEM, ec.KeyPEM, enc), func() ([]byte, error) { asked = true; return nil, nil })
		require.NoError(t, err, tc.name)
		require.False(t, asked, "a file with a plain key never reads the passphrase")
		require.False(t, bn.KeyEncrypted)
		require.Equal(t, 1, bn.Skipped)
		return
	}
	t.Fatal("no EC case")
}

func TestEncryptedKeyHostileParameters(t *testing.T) {
	pk := newPBES2Key(t)
	kp := pk.kdf
	remarshal := func(iterations int, data []byte) []byte {
		k := kp
		k.Iterations = iterations
		return pk.file(t, oidPBKDF2, k, data)
	}
	info := pk.info
	_, err := Parse(remarshal(kp.Iterations, info.Data), fixedPassphrase("pw"))
	require.NoError(t, err, "the file re-encoded as it was still opens")

	// Iterations far past what OpenSSL writes are refused before any work.
	began := time.Now()
	_, err = Parse(remarshal(1<<30, info.Data), fixedPassphrase("pw"))
	require.ErrorContains(t, err, "PBKDF2: at most 600000 iterations")
	require.Less(t, time.Since(began), time.Second)

	// Ciphertext that is not whole blocks (the library's CBC would
	// panic): refused as malformed.
	_, err = Parse(remarshal(kp.Iterations, info.Data[:len(info.Data)-1]), fixedPassphrase("pw"))
	require.ErrorContains(t, err, "cannot be parsed")
}

// The work of opening an encrypted key is bounded (CONTRACT: "key
// derivation parameters whose work exceeds what about a second allows
// (scrypt N x r x p, PBKDF2 iterations) are refused with an error naming
// the scheme and the bound"): PBKDF2 past 600,000 iterations and scrypt
// past N x r x p = 2^20 (p = 16 at N = 2^14, r = 8 is 2^21) are refused
// before any derivation.
func TestEncryptedKeyWorkBound(t *testing.T) {
	pk := newPBES2Key(t)
	kp := pk.kdf
	file := func(kdf asn1.ObjectIdentifier, params any) []byte {
		return pk.file(t, kdf, params, pk.info.Data)
	}
	for _, c := range []struct {
		what  string
		file  []byte
		wants []string
	}{
		{"PBKDF2 600,001 iterations", file(oidPBKDF2, func() pbkdf2Params { k := kp; k.Iterations = maxPBKDF2Iterations + 1; return k }()),
			[]string{"PBKDF2", "600001 iterations", "at most 600000 iterations"}},
		{"scrypt N=2^14 r=8 p=16", file(oidScrypt, scryptParams{Salt: kp.Salt, Cost: 1 << 14, Block: 8, Parallelism: 16}),
			[]string{"scrypt N=16384 r=8 p=16", "N x r x p at most 1048576"}},
		{"scrypt N=2^20 r=8 p=1 (1 GiB)", file(oidScrypt, scryptParams{Salt: kp.Salt, Cost: 1 << 20, Block: 8, Parallelism: 1}),
			[]string{"scrypt N=1048576 r=8 p=1", "64 MiB"}},
	} {
		began := time.Now()
		_, err := Parse(c.file, fixedPassphrase("pw"))
		ek, ok := AsKeyError(err)
		require.True(t, ok, "%s: %v", c.what, err)
		require.Equal(t, refusedWork, ek.reason, "%s: %v", c.what, err)
		for _, w := range c.wants {
			require.ErrorContains(t, err, w, c.what)
		}
		require.Less(t, time.Since(began), time.Second, "%s: refused before any derivation", c.what)
	}
}

// pbes2Key is an EC key encrypted with PKCS#8 PBES2 (PBKDF2), taken apart
// so that a test can put it back together with other KDF parameters.
type pbes2Key struct {
	leafPEM []byte
	info    encryptedPrivateKeyInfo
	params  pbes2Params
	kdf     pbkdf2Params
}

func newPBES2Key(t *testing.T) *pbes2Key {
	t.Helper()
	fx := fixture.LoadBundle(t)
	ec := fx.Chains[emulator.EC]
	key, err := emulator.EncryptKeyPEM(ec.KeyPEM, "pw", emulator.KeyPKCS8)
	require.NoError(t, err)
	b, _ := pem.Decode(key)
	k := &pbes2Key{leafPEM: ec.LeafPEM}
	_, err = asn1.Unmarshal(b.Bytes, &k.info)
	require.NoError(t, err)
	_, err = asn1.Unmarshal(k.info.Algorithm.Parameters.FullBytes, &k.params)
	require.NoError(t, err)
	_, err = asn1.Unmarshal(k.params.KDF.Parameters.FullBytes, &k.kdf)
	require.NoError(t, err)
	return k
}

// file is the leaf and the key encrypted as before but with the KDF kdf and
// its params, over the ciphertext data.
func (k *pbes2Key) file(t *testing.T, kdf asn1.ObjectIdentifier, params any, data []byte) []byte {
	t.Helper()
	kb, err := asn1.Marshal(params)
	require.NoError(t, err)
	q := k.params
	q.KDF.Algorithm = kdf
	q.KDF.Parameters = asn1.RawValue{FullBytes: kb}
	pb, err := asn1.Marshal(q)
	require.NoError(t, err)
	in := k.info
	in.Algorithm.Parameters = asn1.RawValue{FullBytes: pb}
	in.Data = data
	der, err := asn1.Marshal(in)
	require.NoError(t, err)
	return fixture.JoinPEM(k.leafPEM, fixture.PEMOf("ENCRYPTED PRIVATE KEY", der))
}
