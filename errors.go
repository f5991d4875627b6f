package nhncert

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/logical"
)

// The engine's errors, and how each reaches the caller: certError maps
// them to 404, 502 and 504 in one place.

// upstreamError is an answer from NHN that is not a success, or no answer.
// Its text names the operation, the HTTP status and NHN's result code and
// message; it never holds credentials, tokens, URLs or file content.
type upstreamError struct {
	Op          string
	HTTPStatus  int // 0 when no answer came
	ResultCode  int // 0 when the answer had no NHN header
	Message     string
	Unreachable bool // no usable answer after every attempt
}

func (e *upstreamError) Error() string {
	var b strings.Builder
	b.WriteString("NHN Certificate Manager")
	if e.Unreachable {
		b.WriteString(" is unreachable")
	}
	b.WriteString(": ")
	b.WriteString(e.Op)
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.HTTPStatus)
	}
	if e.ResultCode != 0 {
		fmt.Fprintf(&b, ": resultCode %d", e.ResultCode)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// isNotFound reports whether NHN said the certificate or its file does not
// exist (52000, 52001).
func isNotFound(err error) bool {
	var ue *upstreamError
	return errors.As(err, &ue) && (ue.ResultCode == 52000 || ue.ResultCode == 52001)
}

// headerError turns an unsuccessful NHN result header into an error.
func headerError(op string, status int, h *resultHeader) error {
	if h == nil || (h.IsSuccessful != nil && *h.IsSuccessful && h.ResultCode == 0) {
		return nil
	}
	msg := h.ResultMessage
	if msg == "" {
		msg = "unsuccessful answer"
	}
	return &upstreamError{Op: op, HTTPStatus: status, ResultCode: h.ResultCode, Message: cleanText(msg, 200)}
}

// cleanText makes text from outside (NHN's messages, certificate names)
// safe for an error message or a log line: valid UTF-8, control characters
// as spaces, at most n bytes, cut on a character boundary.
func cleanText(s string, n int) string {
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

// errCertNotFound means NHN does not know the name (52000, 52001).
var errCertNotFound = errors.New("certificate not found")

// errBadStoredEntry means a cache entry in storage cannot be decoded; it is
// ignored and downloaded again.
var errBadStoredEntry = errors.New("unreadable cache entry")

// certError maps a lookup failure to what the caller sees: 404 for a name
// NHN does not know, 502 for anything NHN did or sent (a file whose
// encrypted key the engine cannot open included).
func certError(err error) error {
	var ue *upstreamError
	var be *bundleError
	var ek *encryptedKeyError
	switch {
	case errors.Is(err, errCertNotFound):
		return logical.CodedError(http.StatusNotFound, "certificate not found in NHN Certificate Manager")
	case errors.Is(err, errConfigChanged):
		return logical.CodedError(http.StatusServiceUnavailable, err.Error()+"; read again")
	case errors.As(err, &ue), errors.As(err, &be), errors.As(err, &ek):
		// An encrypted key that cannot be opened is the file NHN holds
		// failing to serve, as a damaged one does; its text says what to
		// write where.
		return logical.CodedError(http.StatusBadGateway, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return logical.CodedError(http.StatusGatewayTimeout, "the request ended before NHN Certificate Manager answered")
	default:
		return err
	}
}

// bundleError is a problem with the content of a certificate file. Its text
// never contains key material.
type bundleError struct{ msg string }

func (e *bundleError) Error() string { return "invalid certificate file: " + e.msg }

func bundleErrorf(format string, args ...any) error {
	return &bundleError{msg: fmt.Sprintf(format, args...)}
}
