package nhncert

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
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
	f.Add(joinPEM(ec.LeafPEM, ca.IntermediatePEMs[0], ca.IntermediatePEMs[1], ecPKCS8))
	f.Add(joinPEM(ec.LeafPEM, []byte(ecParamsP256), ec.KeyPEM))
	f.Add(joinPEM(ec.LeafPEM, ca.IntermediatePEMs[0], ca.IntermediatePEMs[0], ed.LeafPEM, ec.KeyPEM))
	f.Add(bytes.ReplaceAll(ec.PEMFile(emulator.FileOptions{IncludeRoot: true}), []byte("\n"), []byte("\r\n")))
	f.Add(joinPEM(ec.LeafPEM, ed.KeyPEM))
	f.Add(joinPEM(ec.LeafPEM, ec.KeyPEM, ed.KeyPEM))
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

func checkParsed(t *testing.T, data []byte, pass passphraseSource) {
	bn, err := parseBundle(data, pass)
	if err != nil {
		var be *bundleError
		var ek *encryptedKeyError
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
		if !isPrintableText(w) || len(w) > 1500 {
			t.Fatalf("warning is not printable and bounded: %q", w)
		}
	}
	for _, format := range []string{formatPEM, formatDER, formatPEMBundle} {
		for _, keyFormat := range []string{"", keyFormatPKCS8} {
			d, err := renderCert(bn, format, keyFormat)
			if err != nil {
				t.Fatalf("renderCert(%s, %q): %v", format, keyFormat, err)
			}
			if s, _ := d["certificate"].(string); s == "" {
				t.Fatalf("renderCert(%s, %q): empty certificate", format, keyFormat)
			}
			if chain, _ := d["ca_chain"].([]string); len(chain) != len(bn.Chain) {
				t.Fatalf("renderCert(%s, %q): ca_chain has %d entries, want %d", format, keyFormat, len(chain), len(bn.Chain))
			}
		}
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{
		"example.com", "*.example.com", "a-b_c.d", "xn--9n2bp8q.com", strings.Repeat("a", 253),
		"", "/", "..", "a..b", "../etc/passwd", "%2f", "a\x00b", "a\nb", "a\x7fb", "a b", "a?b", "a#b",
		`a\b`, "예시.com", "\xff\xfe", strings.Repeat("a", 254), ".", "*", "a/../b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := validateName(name)
		if err != nil {
			msg := err.Error()
			if len(msg) >= 200 {
				t.Fatalf("error text is %d bytes long", len(msg))
			}
			if !isPrintableText(msg) {
				t.Fatalf("error text is not printable: %q", msg)
			}
			return
		}
		if name == "" || len(name) > maxNameLength {
			t.Fatalf("accepted a name of %d bytes", len(name))
		}
		if name == "." || name == ".." || strings.ContainsAny(name, `/\`) || !utf8.ValidString(name) {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range name {
			if unicode.IsControl(r) {
				t.Fatalf("accepted %U in %q", r, name)
			}
		}
		// Accepted: it goes to NHN as exactly one path segment that
		// decodes back to the name.
		seg := pathName(name)
		if strings.Contains(seg, "/") || strings.ContainsAny(seg, "?# ") {
			t.Fatalf("pathName(%q) = %q is not one plain segment", name, seg)
		}
		if back, err := url.PathUnescape(seg); err != nil || back != name {
			t.Fatalf("pathName(%q) = %q decodes to %q, %v", name, seg, back, err)
		}
		if q := quoteName(name); !isPrintableText(q) || len(q) > 100 {
			t.Fatalf("quoteName(%q) = %q", name, q)
		}
	})
}

// isPrintableText reports whether s is valid UTF-8 of printable characters
// only (ASCII space included).
func isPrintableText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// listPageJSON is one list answer as NHN v1.3 sends it.
func listPageJSON(page, pages int, names ...string) []byte {
	type entry struct {
		Name      string   `json:"certificateName"`
		Authority string   `json:"authority"`
		Domains   []string `json:"domains"`
		SigAlg    string   `json:"signatureAlgorithm"`
		Created   string   `json:"fileCreationDate"`
		Expires   string   `json:"expirationDate"`
	}
	data := make([]entry, 0, len(names))
	for _, n := range names {
		data = append(data, entry{n, "NHN", []string{n}, "SHA256withRSA", "2025-03-02", "2026-03-25"})
	}
	b, err := json.Marshal(map[string]any{
		"header": map[string]any{"resultCode": 0, "resultMessage": "success", "isSuccessful": true},
		"body": map[string]any{
			"totalCount": len(names) * pages, "totalPage": pages, "currentPage": page, "pageSize": 10, "data": data,
		},
	})
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzListAnswer(f *testing.F) {
	f.Add(listPageJSON(1, 2, "b.example.com", "*.example.com", "a.example.com"),
		listPageJSON(2, 2, "a.example.com", "c.example.com", "../etc", "a/b", ""))
	f.Add(listPageJSON(1, 1, "nhncloudservice.com"), []byte(nil))
	f.Add([]byte(`{"header":{"resultCode":0,"resultMessage":"success","isSuccessful":true},"body":{"totalCount":1,"totalPage":1,"currentPage":1,"pageSize":10,"data":[{"certificateName":"test.nhn.com","authority":"NHN","signatureAlgorithm":"SHA256withRSA","fileCreationDate":"2020-03-02","expirationDate":"2021-03-25"}]}}`),
		[]byte(`{"header":{"resultCode":0,"resultMessage":"success","isSuccessful":true},"body":{"totalCount":0,"totalPage":0,"currentPage":1,"pageSize":10,"data":[]}}`))
	f.Add([]byte(`{"header":{"resultCode":52000,"resultMessage":"Certificate name does not exist.","isSuccessful":false},"body":{}}`), []byte(`null`))
	f.Add([]byte(`{"header":{"isSuccessful":true},"body":{"totalPage":-1}}`), []byte(`{"header":{},"body":{"data":[null,{"certificateName":"x"}]}}`))
	f.Fuzz(func(t *testing.T, page1, page2 []byte) {
		var pages [][]certInfo
		for _, body := range [][]byte{page1, page2} {
			a, err := decodeListPage("listing certificates (page 1)", body)
			if err != nil {
				var ue *upstreamError
				if !errors.As(err, &ue) {
					t.Fatalf("error is %T, want *upstreamError: %v", err, err)
				}
				if a != nil {
					t.Fatal("an answer and an error")
				}
				if len(err.Error()) > 400 {
					t.Fatalf("error text is %d bytes long", len(err.Error()))
				}
				continue
			}
			if a.Header == nil || a.Body.TotalPage < 0 || a.Body.TotalCount < 0 || a.Body.PageSize < 0 {
				t.Fatalf("accepted answer %+v", a)
			}
			pages = append(pages, a.Body.Data)
		}
		merged, unservable := mergeCertInfos(pages)
		valid := map[string]bool{}
		invalid := map[string]bool{}
		for _, p := range pages {
			for _, c := range p {
				if validateName(c.Name) == nil {
					valid[c.Name] = true
				} else {
					invalid[c.Name] = true
				}
			}
		}
		if len(unservable) != len(invalid) {
			t.Fatalf("unservable = %q, want the %d distinct invalid names", unservable, len(invalid))
		}
		for _, n := range unservable {
			if !invalid[n] {
				t.Fatalf("unservable name %q is valid or was not listed", n)
			}
		}
		if w := unservableWarning(unservable); len(unservable) > 0 && (!isPrintableText(w) || len(w) > 2500) {
			t.Fatalf("warning is not printable and bounded: %d bytes", len(w))
		}
		if len(merged) != len(valid) {
			t.Fatalf("merged %d names, want %d distinct valid ones", len(merged), len(valid))
		}
		for i, c := range merged {
			if err := validateName(c.Name); err != nil {
				t.Fatalf("merged name %q: %v", c.Name, err)
			}
			if !valid[c.Name] {
				t.Fatalf("merged name %q was not in the input", c.Name)
			}
			if i > 0 && merged[i-1].Name >= c.Name {
				t.Fatalf("names not sorted and unique: %q then %q", merged[i-1].Name, c.Name)
			}
		}
		if !slices.IsSortedFunc(merged, func(a, b certInfo) int { return strings.Compare(a.Name, b.Name) }) {
			t.Fatal("not sorted")
		}
	})
}
