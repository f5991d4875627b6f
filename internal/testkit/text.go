package testkit

import (
	"unicode"
	"unicode/utf8"
)

// IsPrintableText reports whether s is valid UTF-8 of printable characters
// only (ASCII space included).
func IsPrintableText(s string) bool {
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
