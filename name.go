package nhncert

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameLength bounds a certificate name, in bytes. Since NHN's release of
// 2025-11-25 a name need not be the certificate's CN, so it is free text;
// 512 bytes hold any name a person types in NHN's console, Hangul included,
// and keep a name bounded wherever it goes (URLs, log lines, events).
const maxNameLength = 512

// validateName checks a certificate name before it is put into an upstream
// URL, a storage key, a log line or an event. A name is refused only when
// this engine cannot carry it as one segment of a Vault path and of an NHN
// URL (the contract's "Names"): empty, "." or ".." (both are path steps,
// not names, and HTTP clients and servers fold them away), '/' or '\'
// (separators, and '\' is one to some proxies), control characters (they
// break log lines and terminals), invalid UTF-8 (NHN's JSON cannot list
// such a name) and more than maxNameLength bytes. Everything else (spaces,
// Hangul, '%', '?', '#', parentheses, ...) is a name NHN can hold; pathName
// escapes it for the URL.
func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("certificate name must not be empty")
	case len(name) > maxNameLength:
		return fmt.Errorf("certificate name is %d bytes long; at most %d are allowed", len(name), maxNameLength)
	case name == "." || name == "..":
		return fmt.Errorf("certificate name must not be %q", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("certificate name %s is not valid UTF-8", quoteName(name))
	}
	for i, r := range name {
		switch {
		case r == '/' || r == '\\':
			return fmt.Errorf("certificate name %s must not contain %q (offset %d)", quoteName(name), r, i)
		case unicode.IsControl(r):
			return fmt.Errorf("certificate name %s must not contain control characters (%U at offset %d)", quoteName(name), r, i)
		}
	}
	return nil
}

// maxQuotedName bounds how much of a name goes into an error message, a
// warning or a log line: quoted, at most this many bytes plus the quotes.
const maxQuotedName = 64

// quoteName returns a name for an error message, a warning or a log line:
// Go-quoted (so control characters, bidi overrides and invalid UTF-8 show as
// escapes and a space or a quote cannot blur where the name ends), and a
// long one cut on a character boundary with its length said.
func quoteName(name string) string {
	q := strconv.Quote(name)
	if len(q) <= maxQuotedName+2 {
		return q
	}
	// Keep the longest prefix whose quoted form fits: escapes make the
	// quoted form of a byte up to 10 bytes long.
	used, cut := 0, 0
	for cut < len(name) {
		_, n := utf8.DecodeRuneInString(name[cut:])
		w := len(strconv.Quote(name[cut:cut+n])) - 2
		if used+w > maxQuotedName {
			break
		}
		used, cut = used+w, cut+n
	}
	return strconv.Quote(name[:cut]) + fmt.Sprintf("... (%d bytes)", len(name))
}

// logName is a name as a log field: quoteName's escapes and bound without
// its quotes (hclog quotes a value itself when it needs to), so that a
// name with a bidi override or of 500 bytes cannot garble or flood a log
// line, and a plain one reads as it is.
func logName(name string) string {
	q := quoteName(name)
	end := strings.LastIndex(q, `"`)
	return q[1:end] + q[end+1:]
}

// pathName percent-encodes a valid name as exactly one URL path segment.
// url.PathEscape escapes '*' too; NHN's console links wildcard names with
// '*' as it is, and that is what NHN has always been sent, so '*' stays.
// url.PathEscape leaves '+' as it is, which some decoders (form decoding,
// older proxies) read as a space: '+' goes as %2B, which every decoder
// reads as '+'.
func pathName(name string) string {
	parts := strings.Split(name, "*")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(url.PathEscape(p), "+", "%2B")
	}
	return strings.Join(parts, "*")
}
