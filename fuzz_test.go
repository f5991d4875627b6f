package nhncert

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

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
			if !testkit.IsPrintableText(msg) {
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
		seg := nhn.PathName(name)
		if strings.Contains(seg, "/") || strings.ContainsAny(seg, "?# ") {
			t.Fatalf("nhn.PathName(%q) = %q is not one plain segment", name, seg)
		}
		if back, err := url.PathUnescape(seg); err != nil || back != name {
			t.Fatalf("nhn.PathName(%q) = %q decodes to %q, %v", name, seg, back, err)
		}
		if q := safetext.Quote(name); !testkit.IsPrintableText(q) || len(q) > 100 {
			t.Fatalf("safetext.Quote(%q) = %q", name, q)
		}
	})
}

// FuzzListServable checks what the engine keeps of a merged list: the
// names it can serve, sorted and each once, and the others, each once, for
// a warning that stays printable and bounded. (The list answer itself is
// fuzzed in nhn, FuzzListAnswer.)
func FuzzListServable(f *testing.F) {
	f.Add("b.example.com\n*.example.com\na.example.com", "a.example.com\nc.example.com\n../etc\na/b\n")
	f.Add("nhncloudservice.com", "")
	f.Add("test.nhn.com", "..\n.\nbad/name\n웹 서버\nbad/name")
	f.Fuzz(func(t *testing.T, page1, page2 string) {
		var pages [][]certInfo
		for _, p := range []string{page1, page2} {
			var page []certInfo
			for _, n := range strings.Split(p, "\n") {
				page = append(page, certInfo{Name: n})
			}
			pages = append(pages, page)
		}
		merged, unservable := servable(nhn.MergePages(pages))
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
		if w := unservableWarning(unservable); len(unservable) > 0 && (!testkit.IsPrintableText(w) || len(w) > 2500) {
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

// FuzzRenderBundle renders every file the reader accepts, in each format:
// a parsed file always renders, with its chain. (The reader itself is
// fuzzed in certfile, FuzzParseBundle, whose corpus this one starts from.)
func FuzzRenderBundle(f *testing.F) {
	fx := fixture.LoadBundle(f)
	for _, c := range fx.Chains {
		f.Add(c.PEMFile(emulator.FileOptions{}))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bn, err := certfile.Parse(data, nil)
		if err != nil {
			return
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
	})
}
