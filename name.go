package nhncert

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxNameLength bounds a certificate name. NHN names are domain-like; a DNS
// name is at most 253 characters.
const maxNameLength = 253

// validateName checks a certificate name before it is put into an upstream
// URL or a storage key. NHN names are domain-like and may contain '*'
// (wildcards); everything outside letters, digits, '.', '-', '_' and '*' is
// refused, which keeps '/', '..', '%', '?', '#', spaces and control
// characters from ever reaching NHN.
func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("certificate name must not be empty")
	case len(name) > maxNameLength:
		return fmt.Errorf("certificate name is %d bytes long; at most %d are allowed", len(name), maxNameLength)
	case strings.Contains(name, ".."):
		return fmt.Errorf("certificate name must not contain %q", "..")
	case name == ".":
		return fmt.Errorf("certificate name must not be %q", ".")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == '_', c == '*':
		case c == '/':
			return fmt.Errorf("certificate name must not contain '/'")
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("certificate name must not contain control characters (byte 0x%02x at offset %d)", c, i)
		default:
			return fmt.Errorf("certificate name contains %q at offset %d; allowed are letters, digits, '.', '-', '_' and '*'", quoteByte(name, i), i)
		}
	}
	return nil
}

// quoteByte returns the character starting at byte i, or the byte as hex
// when it starts no valid UTF-8, for an error message that stays printable.
func quoteByte(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("\\x%02x", s[i])
	}
	return string(r)
}
