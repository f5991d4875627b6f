package nhncert

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
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

func TestValidateNameAccepts(t *testing.T) {
	for _, name := range []string{
		"example.com",
		"*.example.com",
		"a-b_c.d",
		"www.example.co.kr",
		"EXAMPLE.COM",
		"xn--9n2bp8q.com", // 예시.com in punycode
		"cert_2025-01",
		"a",
		strings.Repeat("a", maxNameLength),
		strings.Repeat("a.", maxNameLength/2) + "a", // 253 bytes with dots
	} {
		require.NoError(t, validateName(name), "%q (%d bytes)", truncateForMsg(name), len(name))
	}
	require.Equal(t, 253, maxNameLength)
}

func TestValidateNameRejects(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string // substring of the error
	}{
		{"empty", "", "empty"},
		{"slash", "/", "'/'"},
		{"path", "a/b", "'/'"},
		{"leading slash", "/etc/passwd", "'/'"},
		{"dot dot", "..", `".."`},
		{"dot dot inside", "a..b", `".."`},
		{"traversal", "../config", `".."`},
		{"encoded slash", "%2f", `"%"`},
		{"encoded traversal", "%2e%2e", `"%"`},
		{"NUL", "a\x00b", "control characters"},
		{"newline", "example.com\n", "control characters"},
		{"carriage return", "a\rb", "control characters"},
		{"tab", "a\tb", "control characters"},
		{"escape", "a\x1b[31mred", "control characters"},
		{"DEL", "a\x7fb", "control characters"},
		{"space", "a b", `" "`},
		{"question mark", "a?b=c", `"?"`},
		{"hash", "a#b", `"#"`},
		{"backslash", `a\b`, `"\\"`},
		{"colon", "a:b", `":"`},
		{"at", "user@example.com", `"@"`},
		{"unicode", "예시.com", `"예"`},
		{"unicode bidi override", "a\u202eb", "offset 1"},
		{"invalid UTF-8", "a\xff\xfe", `\\xff`},
		{"lone continuation byte", "\x80", `\\x80`},
		{"254 bytes", strings.Repeat("a", maxNameLength+1), "254 bytes"},
		{"10 KB", strings.Repeat("a", 10<<10), "10240 bytes"},
		{"10 KB of control bytes", strings.Repeat("\x01", 10<<10), "10240 bytes"},
		{"10 KB of invalid UTF-8", strings.Repeat("\xff", 10<<10), "10240 bytes"},
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

// TestValidateNameEveryByte: a single byte next to valid characters is
// accepted exactly when it is a letter, a digit, '.', '-', '_' or '*', and
// every refusal is printable.
func TestValidateNameEveryByte(t *testing.T) {
	for b := range 256 {
		c := byte(b)
		allowed := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == '*'
		name := "x" + string([]byte{c}) + "y"
		err := validateName(name)
		if allowed {
			require.NoError(t, err, "byte 0x%02x", c)
			continue
		}
		require.Error(t, err, "byte 0x%02x", c)
		requirePrintableShort(t, err.Error())
	}
}

func truncateForMsg(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
