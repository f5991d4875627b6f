package nhncert

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// requirePrintableShort checks that an error text can go into a response or
// a log line as it is: valid UTF-8, no control or other non-printable
// characters, and short whatever the input.
func requirePrintableShort(t testing.TB, msg string) {
	t.Helper()
	require.True(t, utf8.ValidString(msg), "error text is not valid UTF-8: %q", msg)
	for i, r := range msg {
		require.True(t, unicode.IsPrint(r), "error text has non-printable %U at %d: %q", r, i, msg)
	}
	require.Less(t, len(msg), 200, "error text is too long: %q", msg)
}

// The names the contract says are valid: anything NHN's console takes but
// the few a path segment cannot carry.
var validNames = []string{
	"example.com",
	"*.example.com",
	"example.com-2026",
	"example.com (new)",
	"웹 서버 인증서",
	"100%",
	"%2f",    // a literal percent sign, not an encoded slash
	"%2e%2e", // nor encoded dots
	"a?b=c",
	"a#b",
	"user@example.com",
	"a:b",
	"( ) [ ] @ # % ? + , ; = ~ '",
	`quote"d`,
	" leading and trailing ",
	"a..b",
	"...",
	".hidden",
	"xn--9n2bp8q.com",
	"예시.com",
	"a\u202eb", // a bidi override is a format character, not a control one; quoteName escapes it
	strings.Repeat("a", maxNameLength),
	strings.Repeat("가", maxNameLength/3), // 510 bytes of Hangul
}

func TestValidateNameAccepts(t *testing.T) {
	require.Equal(t, 512, maxNameLength)
	for _, name := range validNames {
		require.NoError(t, validateName(name), "%s (%d bytes)", safetext.Quote(name), len(name))
	}
}

func TestValidateNameRejects(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string // substring of the error
	}{
		{"empty", "", "empty"},
		{"dot", ".", `not be "."`},
		{"dot dot", "..", `not be ".."`},
		{"slash", "/", `'/'`},
		{"path", "a/b", `'/'`},
		{"traversal", "../config", `'/'`},
		{"leading slash", "/etc/passwd", `'/'`},
		{"backslash", `a\b`, `'\\'`},
		{"backslash traversal", `..\config`, `'\\'`},
		{"NUL", "a\x00b", "control characters (U+0000 at offset 1)"},
		{"newline", "example.com\n", "control characters (U+000A"},
		{"carriage return", "a\rb", "control characters"},
		{"tab", "a\tb", "control characters"},
		{"escape", "a\x1b[31mred", `"a\x1b[31mred"`},
		{"DEL", "a\x7fb", "U+007F"},
		{"C1 NEL", "a\u0085b", "U+0085"},
		{"invalid UTF-8", "a\xff\xfe", `"a\xff\xfe" is not valid UTF-8`},
		{"lone continuation byte", "\x80", `\x80`},
		{"513 bytes", strings.Repeat("a", maxNameLength+1), "513 bytes"},
		{"10 KB", strings.Repeat("a", 10<<10), "10240 bytes"},
		{"10 KB of control bytes", strings.Repeat("\x01", 10<<10), "10240 bytes"},
		{"10 KB of invalid UTF-8", strings.Repeat("\xff", 10<<10), "10240 bytes"},
		{"512 bytes of control bytes", strings.Repeat("\x01", maxNameLength), "control characters"},
		{"512 bytes of invalid UTF-8", strings.Repeat("\xff", maxNameLength), "not valid UTF-8"},
		{"long name with a slash at the end", strings.Repeat("웹", 150) + "/", "(451 bytes)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := validateName(tc.in)
			require.Error(t, err)
			msg := err.Error()
			require.Contains(t, msg, tc.want)
			requirePrintableShort(t, msg)
		})
	}
}

// TestValidateNameEveryByte: a single byte between letters is refused
// exactly when it is '/', '\', a control character or not UTF-8 on its own
// (0x80 and up), and every refusal is printable.
func TestValidateNameEveryByte(t *testing.T) {
	for b := range 256 {
		c := byte(b)
		refused := c == '/' || c == '\\' || c < 0x20 || c == 0x7f || c >= 0x80
		name := "x" + string([]byte{c}) + "y"
		err := validateName(name)
		if !refused {
			require.NoError(t, err, "byte 0x%02x", c)
			continue
		}
		require.Error(t, err, "byte 0x%02x", c)
		requirePrintableShort(t, err.Error())
	}
}

// TestPathNameIsOneSegment: every valid name goes to NHN as one path
// segment that an HTTP server decodes back to the name, with '*' as it is.
func TestPathNameIsOneSegment(t *testing.T) {
	for _, name := range validNames {
		seg := nhn.PathName(name)
		require.NotContains(t, seg, "/", name)
		require.NotContains(t, seg, " ", name)
		require.NotContains(t, seg, "?", name)
		require.NotContains(t, seg, "#", name)
		require.Equal(t, strings.Count(name, "*"), strings.Count(seg, "*"), "'*' as it is: %s", seg)
		back, err := url.PathUnescape(seg)
		require.NoError(t, err, seg)
		require.Equal(t, name, back)
		u, err := url.Parse("https://nhn.invalid/certificates/" + seg + "/files")
		require.NoError(t, err, seg)
		require.Equal(t, "/certificates/"+name+"/files", u.Path, "one segment, decoded once")
	}
	require.Equal(t, "*.example.com", nhn.PathName("*.example.com"))
	require.Equal(t, "example.com%20%28new%29", nhn.PathName("example.com (new)"))
	require.Equal(t, "100%25", nhn.PathName("100%"))
	require.Equal(t, "%252f", nhn.PathName("%2f"))
	require.Equal(t, "a%3Fb=c%23d", nhn.PathName("a?b=c#d"))
	require.Equal(t, "a%2Bb", nhn.PathName("a+b"), "'+' goes as %2B, never raw (a form decoder reads a raw '+' as a space)")
	require.Equal(t, "c%2B%2B*", nhn.PathName("c++*"))
	require.Equal(t, "%EC%9B%B9%20%EC%84%9C%EB%B2%84%20%EC%9D%B8%EC%A6%9D%EC%84%9C", nhn.PathName("웹 서버 인증서"))
}

func TestQuoteName(t *testing.T) {
	require.Equal(t, `"example.com (new)"`, safetext.Quote("example.com (new)"))
	require.Equal(t, `"웹 서버 인증서"`, safetext.Quote("웹 서버 인증서"))
	require.Equal(t, `"a\u202eb"`, safetext.Quote("a\u202eb"), "a bidi override cannot turn a log line around")
	for _, in := range []string{
		strings.Repeat("a", 10<<10), strings.Repeat("\x01", 600), strings.Repeat("\xff", 600),
		strings.Repeat("웹", 300), strings.Repeat("\u202e", 300), strings.Repeat(`"`, 600),
	} {
		q := safetext.Quote(in)
		requirePrintableShort(t, q)
		require.LessOrEqual(t, len(q), safetext.MaxQuoted+2+len("... (10240 bytes)"))
		require.Contains(t, q, "bytes)")
	}
}

// A name in a log field reads as it is when it is plain, and escaped and
// bounded when it is not.
func TestLogName(t *testing.T) {
	require.Equal(t, "example.com (new)", logName("example.com (new)"))
	require.Equal(t, "웹 서버 인증서", logName("웹 서버 인증서"))
	require.Equal(t, `a\u202eb`, logName("a\u202eb"))
	long := logName(strings.Repeat("\u202e", 300))
	requirePrintableShort(t, long)
	require.True(t, strings.HasSuffix(long, "... (900 bytes)"), long)
	require.NotContains(t, long, `"`)
}

func TestMergeCertInfos(t *testing.T) {
	infos, skipped := servable(nhn.MergePages([][]certInfo{
		{{Name: "b.example.com"}, {Name: "a.example.com"}},
		{{Name: "b.example.com"}, {Name: "bad/name"}, {Name: "*.example.com"}, {Name: "웹 서버"}, {Name: ".."}, {Name: "bad/name"}},
		nil,
	}))
	require.Equal(t, []string{"..", "bad/name"}, skipped, "sorted, each once")
	var names []string
	for _, c := range infos {
		names = append(names, c.Name)
	}
	require.Equal(t, []string{"*.example.com", "a.example.com", "b.example.com", "웹 서버"}, names)
}
