package nhn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
)

// Result codes NHN answers for a name or file it does not hold.
const (
	ResultCertificateNotFound = 52000
	ResultFileNotFound        = 52001
)

// Error is an answer from NHN that is not a success, or no answer.
// Its text names the operation, the HTTP status and NHN's result code and
// message; it never holds credentials, tokens, URLs or file content.
type Error struct {
	Op          string
	HTTPStatus  int // 0 when no answer came
	ResultCode  int // 0 when the answer had no NHN header
	Message     string
	Unreachable bool // no usable answer after every attempt
}

func (e *Error) Error() string {
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

// IsNotFound reports whether NHN said the certificate or its file does not
// exist (52000, 52001).
func IsNotFound(err error) bool {
	var ue *Error
	return errors.As(err, &ue) && (ue.ResultCode == ResultCertificateNotFound || ue.ResultCode == ResultFileNotFound)
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
	return &Error{Op: op, HTTPStatus: status, ResultCode: h.ResultCode, Message: safetext.Clean(msg, 200)}
}
