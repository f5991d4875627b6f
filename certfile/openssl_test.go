package certfile

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

// The differential check: ParseBundle reads a certificate file exactly
// when OpenSSL does, and then the same leaf and key. "OpenSSL reads it"
// means `openssl x509 -in f` and `openssl pkey -in f` both succeed and one
// of the certificates OpenSSL reads from f matches the key OpenSSL reads:
// `openssl x509` prints only the first certificate, which in a file with
// the chain first is not the leaf, so the others come from `openssl
// storeutl -certs f`, which reads a file the way x509 and pkey do.

// opensslVariants is how many variations of real files the check makes;
// each costs two or three runs of openssl (a few ms each).
// NHNCERT_OPENSSL_VARIANTS=n makes more, for a longer hunt.
const opensslVariants = 300

// opensslSeed fixes the variations: a failure names the variant, and the
// same seed makes it again. NHNCERT_OPENSSL_SEED=n picks other ones.
const opensslSeed = 20261201

// opensslRead is what OpenSSL makes of a file.
type opensslRead struct {
	certOK, keyOK bool
	first         []byte   // DER of the certificate `openssl x509` reads
	pub           []byte   // the key's public key (SubjectPublicKeyInfo DER) as `openssl pkey` reads it
	leaf          []byte   // DER of the certificate OpenSSL reads whose public key is pub; nil when none
	certs         [][]byte // every certificate OpenSSL reads (only when the first is not the leaf)
}

func (o opensslRead) accepts() bool { return o.certOK && o.keyOK && o.leaf != nil }

func opensslBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("SKIPPED: openssl is not in PATH; the differential check of ParseBundle against OpenSSL needs it")
	}
	return bin
}

// readWithOpenSSL runs openssl on file.
func readWithOpenSSL(t *testing.T, bin, dir string, n int, file []byte) opensslRead {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("v%04d.pem", n))
	require.NoError(t, os.WriteFile(path, file, 0o600))
	run := func(args ...string) ([]byte, bool) {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = nil // an encrypted key asks for a password on a terminal; there is none
		out, err := cmd.Output()
		return out, err == nil
	}
	var r opensslRead
	r.first, r.certOK = run("x509", "-in", path, "-outform", "DER")
	r.pub, r.keyOK = run("pkey", "-in", path, "-passin", "pass:", "-pubout", "-outform", "DER")
	if !r.certOK || !r.keyOK {
		return r
	}
	if publicKeyDER(r.first) != nil && bytes.Equal(publicKeyDER(r.first), r.pub) {
		r.leaf = r.first
		return r
	}
	out, _ := run("storeutl", "-certs", path)
	for rest := out; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		r.certs = append(r.certs, b.Bytes)
		if r.leaf == nil && bytes.Equal(publicKeyDER(b.Bytes), r.pub) {
			r.leaf = b.Bytes
		}
	}
	return r
}

func publicKeyDER(certDER []byte) []byte {
	c, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil
	}
	return c.RawSubjectPublicKeyInfo
}

// fileBlock is one block of a generated file.
type fileBlock struct {
	label string
	der   []byte
}

// variant is one generated file and how it was made, for the failure text.
type variant struct {
	file []byte
	how  []string
}

// makeVariant builds a file from a real chain the way people and their
// tools write one: blocks in any order, line endings of any platform, a
// byte order mark, text before, between and after the blocks (openssl
// pkcs12's "Bag Attributes", comments), indentation, odd line widths, RFC
// 1421 headers, a missing final newline, trailing garbage, and now and then
// a block that is damaged.
func makeVariant(rng *mrand.Rand, fx *fixture.Bundle) variant {
	var v variant
	note := func(f string, a ...any) { v.how = append(v.how, fmt.Sprintf(f, a...)) }
	kts := []emulator.KeyType{emulator.RSA, emulator.RSAPKCS8, emulator.EC, emulator.ECPKCS8, emulator.Ed25519}
	kt := kts[rng.IntN(len(kts))]
	ch := fx.Chains[kt]
	note("key %s", kt)
	keyBlock, _ := pem.Decode(ch.KeyPEM)
	blocks := []fileBlock{{"CERTIFICATE", ch.Leaf.Raw}, {"CERTIFICATE", fx.CA.Intermediates[0].Raw}, {keyBlock.Type, keyBlock.Bytes}}
	if rng.IntN(2) == 0 {
		rootBlock, _ := pem.Decode(fx.CA.RootPEM)
		blocks = append(blocks, fileBlock{"CERTIFICATE", rootBlock.Bytes})
		note("root included")
	}
	if rng.IntN(3) > 0 {
		rng.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
	}
	order := make([]string, len(blocks))
	for i, b := range blocks {
		order[i] = b.label
		if b.label == "CERTIFICATE" {
			c, _ := x509.ParseCertificate(b.der)
			order[i] = c.Subject.CommonName
		}
	}
	note("order %s", strings.Join(order, ", "))

	width := []int{64, 64, 64, 76, 72, 80, 40, 1000}[rng.IntN(8)]
	if width != 64 {
		note("base64 lines of %d", width)
	}
	indent := []string{"", "", "", " ", "    ", "\t", " \t"}[rng.IntN(7)]
	if indent != "" {
		note("base64 indented %q", indent)
	}
	trailing := []string{"", "", "", " ", "\t", "  \t "}[rng.IntN(6)]
	if trailing != "" {
		note("trailing whitespace %q", trailing)
	}
	blankAfterBegin := rng.IntN(8) == 0
	if blankAfterBegin {
		note("blank line after BEGIN")
	}
	// One block may get something only it has.
	odd, oddKind := rng.IntN(len(blocks)), ""
	if rng.IntN(4) == 0 {
		oddKind = []string{"header", "proc-type", "blank inside", "blank before END", "indented BEGIN", "indented END",
			"no END", "text after END", "text after BEGIN", "bad base64", "base64 cut", "label with two spaces",
			"data after padding", "vertical tab", "BOM"}[rng.IntN(15)]
		note("block %d: %s", odd, oddKind)
	}

	var b strings.Builder
	switch rng.IntN(6) {
	case 0:
		b.WriteString("\xef\xbb\xbf")
		note("UTF-8 BOM")
	case 1:
		b.WriteString("Bag Attributes\n    localKeyID: 01 00 00 00 \n    friendlyName: leaf\nsubject=CN = leaf\n\nissuer=CN = intermediate\n")
		note("bag attributes first")
	case 2:
		b.WriteString("# exported by hand\n\n\n")
		note("comment first")
	}
	for i, blk := range blocks {
		if i > 0 {
			switch rng.IntN(6) {
			case 0:
				b.WriteString("\n\n")
			case 1:
				b.WriteString("Bag Attributes: <No Attributes>\nsubject=O = NHN Cloud Emulator, CN = Intermediate\n")
			case 2:
				b.WriteString("Key Attributes\n    X509v3 Key Usage: 10 \n")
			}
		}
		label := blk.label
		if i == odd && oddKind == "label with two spaces" {
			label = " " + label
		}
		begin, end := "-----BEGIN "+label+"-----", "-----END "+label+"-----"
		if i == odd && oddKind == "BOM" {
			begin = "\xef\xbb\xbf" + begin
		}
		if i == odd && oddKind == "indented BEGIN" {
			begin = "  " + begin
		}
		if i == odd && oddKind == "text after BEGIN" {
			begin += " x"
		}
		if i == odd && oddKind == "indented END" {
			end = "  " + end
		}
		if i == odd && oddKind == "text after END" {
			end += " (end)"
		}
		b.WriteString(begin + trailing + "\n")
		if i == odd && oddKind == "header" {
			b.WriteString("Comment: written by hand\n\n")
		}
		if i == odd && oddKind == "proc-type" {
			b.WriteString("Proc-Type: 4,MIC-ONLY\n\n")
		}
		if blankAfterBegin {
			b.WriteString("\n")
		}
		enc := base64.StdEncoding.EncodeToString(blk.der)
		if i == odd && oddKind == "bad base64" {
			enc = enc[:10] + "!" + enc[11:]
		}
		if i == odd && oddKind == "base64 cut" {
			enc = enc[:len(enc)-3]
		}
		if i == odd && oddKind == "data after padding" {
			enc += "=AAAA"
		}
		var lines []string
		for len(enc) > 0 {
			n := min(width, len(enc))
			lines = append(lines, enc[:n])
			enc = enc[n:]
		}
		for j, l := range lines {
			if i == odd && j == len(lines)/2 && oddKind == "blank inside" {
				b.WriteString("\n")
			}
			if i == odd && j == 1 && oddKind == "vertical tab" {
				l = l[:5] + "\v" + l[5:]
			}
			b.WriteString(indent + l + trailing + "\n")
		}
		if i == odd && oddKind == "blank before END" {
			b.WriteString("\n")
		}
		if i == odd && oddKind == "no END" {
			continue
		}
		b.WriteString(end + trailing + "\n")
	}
	switch rng.IntN(6) {
	case 0:
		b.WriteString("trailing text without newline")
		note("text after")
	case 1:
		b.WriteString("\x00\x01binary\xff\xfe garbage\n")
		note("binary after")
	case 2:
		b.WriteString("-----BEGIN CERTIFICATE-----\nMIIB")
		note("cut-off block after")
	}
	file := []byte(b.String())
	if rng.IntN(6) == 0 && bytes.HasSuffix(file, []byte("\n")) {
		file = file[:len(file)-1]
		note("no final newline")
	}
	switch rng.IntN(8) {
	case 0, 1:
		file = bytes.ReplaceAll(file, []byte("\n"), []byte("\r\n"))
		note("CRLF")
	case 2:
		var out []byte
		for _, line := range bytes.SplitAfter(file, []byte("\n")) {
			if rng.IntN(2) == 0 && bytes.HasSuffix(line, []byte("\n")) {
				line = append(line[:len(line)-1:len(line)-1], '\r', '\n')
			}
			out = append(out, line...)
		}
		file = out
		note("CRLF on some lines")
	case 3:
		if rng.IntN(4) == 0 {
			file = bytes.ReplaceAll(file, []byte("\n"), []byte("\r"))
			note("CR only")
		}
	}
	v.file = file
	return v
}

// TestParseBundleAsOpenSSLReadsIt is the differential check.
func TestParseBundleAsOpenSSLReadsIt(t *testing.T) {
	bin := opensslBinary(t)
	fx := fixture.LoadBundle(t)
	dir := t.TempDir()
	seed := testkit.EnvInt(t, "NHNCERT_OPENSSL_SEED", opensslSeed)
	rng := mrand.New(mrand.NewPCG(seed, 0))
	variants := make([]variant, testkit.EnvInt(t, "NHNCERT_OPENSSL_VARIANTS", opensslVariants))
	for i := range variants {
		variants[i] = makeVariant(rng, fx)
	}
	reads := make([]opensslRead, len(variants))
	var g errgroup.Group
	g.SetLimit(2) // the machine is shared; two openssl processes at a time
	for i := range variants {
		g.Go(func() error {
			reads[i] = readWithOpenSSL(t, bin, dir, i, variants[i].file)
			return nil
		})
	}
	require.NoError(t, g.Wait())

	var mu sync.Mutex
	accepted, disagreements := 0, 0
	for i, v := range variants {
		o := reads[i]
		bn, err := Parse(v.file, nil)
		what := fmt.Sprintf("variant %d (seed %d): %s", i, seed, strings.Join(v.how, "; "))
		if o.accepts() != (err == nil) {
			mu.Lock()
			disagreements++
			mu.Unlock()
			t.Errorf("%s: OpenSSL x509 %v, pkey %v, leaf found %v; ParseBundle: %v\n%q", what, o.certOK, o.keyOK, o.leaf != nil, err, v.file)
			continue
		}
		if err != nil {
			continue
		}
		accepted++
		require.Equal(t, o.leaf, bn.Leaf.Raw, "%s: the leaf is the certificate OpenSSL reads that matches the key", what)
		pub, perr := x509.MarshalPKIXPublicKey(bn.Key.Public())
		require.NoError(t, perr)
		require.Equal(t, o.pub, pub, "%s: the key is the one OpenSSL reads", what)
	}
	t.Logf("%d variants: %d read by both, %d refused by both, %d disagreements", len(variants), accepted, len(variants)-accepted-disagreements, disagreements)
	// Both outcomes must occur, or the variations test nothing.
	require.Greater(t, accepted, len(variants)/2)
	require.Less(t, accepted, len(variants))
}
