// Package safetext makes text from outside (NHN's messages, certificate
// names, fields of a certificate file) safe for an error message or a log
// line. The NHN client, the certificate file reader and the engine share
// it, so that each bounds what it quotes the same way.
package safetext

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clean makes text from outside (NHN's messages, certificate names)
// safe for an error message or a log line: valid UTF-8, control characters
// as spaces, at most n bytes, cut on a character boundary.
func Clean(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// MaxQuoted bounds how much of a name goes into an error message, a
// warning or a log line: quoted, at most this many bytes plus the quotes.
const MaxQuoted = 64

// Quote returns a name for an error message, a warning or a log line:
// Go-quoted (so control characters, bidi overrides and invalid UTF-8 show as
// escapes and a space or a quote cannot blur where the name ends), and a
// long one cut on a character boundary with its length said.
func Quote(name string) string {
	q := strconv.Quote(name)
	if len(q) <= MaxQuoted+2 {
		return q
	}
	// Keep the longest prefix whose quoted form fits: escapes make the
	// quoted form of a byte up to 10 bytes long.
	used, cut := 0, 0
	for cut < len(name) {
		_, n := utf8.DecodeRuneInString(name[cut:])
		w := len(strconv.Quote(name[cut:cut+n])) - 2
		if used+w > MaxQuoted {
			break
		}
		used, cut = used+w, cut+n
	}
	return strconv.Quote(name[:cut]) + fmt.Sprintf("... (%d bytes)", len(name))
}
