package nhncert

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
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
		return fmt.Errorf("certificate name %s is not valid UTF-8", safetext.Quote(name))
	}
	for i, r := range name {
		switch {
		case r == '/' || r == '\\':
			return fmt.Errorf("certificate name %s must not contain %q (offset %d)", safetext.Quote(name), r, i)
		case unicode.IsControl(r):
			return fmt.Errorf("certificate name %s must not contain control characters (%U at offset %d)", safetext.Quote(name), r, i)
		}
	}
	return nil
}

// logName is a name as a log field: safetext.Quote's escapes and bound without
// its quotes (hclog quotes a value itself when it needs to), so that a
// name with a bidi override or of 500 bytes cannot garble or flood a log
// line, and a plain one reads as it is.
func logName(name string) string {
	q := safetext.Quote(name)
	end := strings.LastIndex(q, `"`)
	return q[1:end] + q[end+1:]
}

// servable splits a list into the certificates this engine can serve and
// the names it cannot (see validateName), sorted and each once, for the
// list's warning.
func servable(infos []certInfo) (ok []certInfo, unservable []string) {
	ok = make([]certInfo, 0, len(infos))
	for _, c := range infos {
		if validateName(c.Name) != nil {
			unservable = append(unservable, c.Name)
			continue
		}
		ok = append(ok, c)
	}
	slices.Sort(unservable)
	return ok, slices.Compact(unservable)
}
