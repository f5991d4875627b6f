package nhn

import (
	"context"
	"errors"
	"net"
	"time"
)

// Observer is told of every request the client sends, once, with its
// outcome and how long it took: the engine counts them for its metrics.
// Request is called from the goroutine that made the request, and must
// not block.
type Observer interface {
	Request(call Call, outcome Outcome, took time.Duration)
}

// Call is the kind of request made to NHN.
type Call int

const (
	CallToken Call = iota
	CallList
	CallDownload
	NumCalls
)

var callNames = [NumCalls]string{"token", "list", "download"}

// Outcome is what became of one request to NHN: a small fixed set,
// never a free-form string.
type Outcome int

const (
	OutcomeOK Outcome = iota
	OutcomeNotFound
	OutcomeHTTP4xx
	OutcomeHTTP5xx
	OutcomeTimeout
	OutcomeTransport
	OutcomeNHNError
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{"ok", "not_found", "http_4xx", "http_5xx", "timeout", "transport", "nhn_error"}

// transportOutcome classifies a request that got no HTTP answer.
func transportOutcome(err error) Outcome {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return OutcomeTimeout
	}
	return OutcomeTransport
}

// statusOutcome classifies an HTTP answer from NHN. h is the answer's NHN
// result header when it has one.
func statusOutcome(status int, h *resultHeader) Outcome {
	notFound := h != nil && (h.ResultCode == ResultCertificateNotFound || h.ResultCode == ResultFileNotFound)
	switch {
	case notFound:
		return OutcomeNotFound
	case status >= 500:
		return OutcomeHTTP5xx
	case status >= 400:
		return OutcomeHTTP4xx
	case status < 200 || status >= 300:
		return OutcomeTransport // 1xx/3xx: not an answer this client follows
	case h != nil && headerError("", status, h) != nil:
		return OutcomeNHNError
	}
	return OutcomeOK
}

// String is the call's name, as a metrics label.
func (c Call) String() string { return callNames[c] }

// String is the outcome's name, as a metrics label.
func (o Outcome) String() string { return outcomeNames[o] }
