package nhn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
)

// One upstream call: authentication headers, a bound per attempt, and
// retries of what may pass (5xx, 429, transport errors) with backoff and
// jitter, honouring Retry-After.

const (
	// MaxAttempts is how often one upstream call is tried when NHN answers
	// 5xx or 429 or cannot be reached.
	MaxAttempts = 3
	// retryBase is the first backoff; it doubles per attempt, with jitter.
	retryBase = 250 * time.Millisecond
	// maxRetryWait caps one backoff, Retry-After included.
	maxRetryWait = 10 * time.Second
)

// oneAttemptKey marks a context whose upstream calls are tried once.
type oneAttemptKey struct{}

// WithOneAttempt makes the calls made with ctx try once, not MaxAttempts
// times: the caller has something to serve if NHN fails, or NHN failed
// for it lately, and a retry would be one more request to a failing NHN.
func WithOneAttempt(ctx context.Context) context.Context {
	return context.WithValue(ctx, oneAttemptKey{}, true)
}

// attemptsFor is how often a call made with ctx is tried.
func attemptsFor(ctx context.Context) int {
	if one, _ := ctx.Value(oneAttemptKey{}).(bool); one {
		return 1
	}
	return MaxAttempts
}

// noRedirect keeps credentials headers from following a redirect elsewhere.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// do sends a request built by build, with authentication, retrying 5xx,
// 429 and transport errors up to attemptsFor(ctx) times (MaxAttempts, or
// one) with backoff and jitter inside an overall bound of Timeout x
// attempts; each attempt is bounded by Timeout. On v1.3 a 401 makes it
// drop the token, get a new one and try once more. It returns the body
// and header of a 2xx answer, the body read up to limit bytes.
func (c *Client) do(ctx context.Context, call Call, op string, authenticate bool, limit int64, build func(context.Context) (*http.Request, error)) ([]byte, http.Header, error) {
	attempts := attemptsFor(ctx)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout*time.Duration(attempts))
	defer cancel()
	// Closing the client cancels ctx (the attempts, the waits between
	// them) before close returns; a closed client sends nothing.
	untrack, ok := c.track(cancel)
	if !ok {
		return nil, nil, errClientClosed(op)
	}
	defer untrack()
	defer c.afterRequest()

	var (
		lastErr    *Error
		retryAfter time.Duration
		reissued   bool
	)
	for attempt := 1; attempt <= attempts; attempt++ {
		if lastErr != nil && attempt > 1 {
			wait := max(backoff(attempt-1, c.jitter()), retryAfter)
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				break // no time left for another attempt
			}
			if c.sleep(ctx, wait) != nil {
				break
			}
		}
		retryAfter = 0
		body, header, status, token, err := c.attempt(ctx, call, authenticate, limit, build)
		if err != nil {
			var ue *Error
			if errors.As(err, &ue) {
				if ue.Op == "" {
					ue.Op = op
				}
				return nil, nil, ue // not worth retrying: bad credentials, oversized answer
			}
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil, nil, &Error{Op: op, Message: "request cancelled"}
			}
			lastErr = &Error{Op: op, Message: transportMessage(err)}
			c.logger.Debug("upstream call failed", "op", op, "attempt", attempt, "error", lastErr.Message)
			continue
		}
		switch {
		case status >= 200 && status < 300:
			return body, header, nil
		case status == http.StatusUnauthorized && authenticate && c.cfg.APIVersion == V13 && !reissued:
			// The token expired or was revoked: drop it and get a new one.
			// This does not count as an attempt.
			c.logger.Debug("bearer token rejected; issuing a new one", "op", op)
			c.dropToken(token)
			reissued = true
			attempt--
			lastErr = nil
			continue
		case status == http.StatusTooManyRequests || status >= 500:
			lastErr = statusError(op, status, body)
			retryAfter = parseRetryAfter(header.Get("Retry-After"))
			c.logger.Debug("upstream call failed", "op", op, "attempt", attempt, "status", status)
			continue
		default:
			return nil, nil, statusError(op, status, body)
		}
	}
	if lastErr == nil {
		lastErr = &Error{Op: op, Message: "no attempt could be made in time"}
	}
	lastErr.Unreachable = true
	return nil, nil, lastErr
}

// attempt makes one request. A transport error is returned as is (to be
// retried); an *Error is final.
func (c *Client) attempt(ctx context.Context, call Call, authenticate bool, limit int64, build func(context.Context) (*http.Request, error)) (body []byte, header http.Header, status int, token string, err error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := build(actx)
	if err != nil {
		return nil, nil, 0, "", &Error{Message: "cannot build the request: " + transportMessage(err)}
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if authenticate {
		switch c.cfg.APIVersion {
		case V11:
			req.Header.Set("X-TC-AUTHENTICATION-ID", c.cfg.AccessKeyID)
			req.Header.Set("X-TC-AUTHENTICATION-SECRET", c.cfg.SecretAccessKey)
		default:
			token, err = c.bearer(ctx)
			if err != nil {
				return nil, nil, 0, "", err
			}
			req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+token)
		}
	}
	// Every request sent is counted once, with its outcome
	// (metrics.go).
	began := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.observe(call, transportOutcome(err), time.Since(began))
		return nil, nil, 0, token, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		c.observe(call, transportOutcome(err), time.Since(began))
		return nil, nil, 0, token, err
	}
	if int64(len(body)) > limit {
		c.observe(call, OutcomeNHNError, time.Since(began))
		return nil, nil, 0, token, &Error{HTTPStatus: resp.StatusCode, Message: fmt.Sprintf("answer is larger than %d bytes", limit)}
	}
	c.observe(call, statusOutcome(resp.StatusCode, answerHeader(resp.Header, body)), time.Since(began))
	return body, resp.Header, resp.StatusCode, token, nil
}

// statusError describes a non-2xx answer, with NHN's result code and
// message when the body has them.
func statusError(op string, status int, body []byte) *Error {
	e := &Error{Op: op, HTTPStatus: status}
	var a struct {
		Header *resultHeader `json:"header"`
		// The token service may answer in OAuth's error format.
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &a) == nil {
		switch {
		case a.Header != nil:
			e.ResultCode = a.Header.ResultCode
			e.Message = safetext.Clean(a.Header.ResultMessage, 200)
		case a.Error != "":
			e.Message = safetext.Clean(strings.TrimSpace(a.Error+" "+a.ErrorDescription), 200)
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// transportMessage describes a failed round trip without the URL, which
// would carry the app key, and without anything the server sent.
func transportMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within request_timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before an answer"
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return ne.Op + ": " + ne.Err.Error()
	}
	return safetext.Clean(err.Error(), 200)
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), maxRetryWait)
}

// backoff is the wait before retry n (1-based): retryBase doubled per retry,
// scaled by 0.5 + jitter, jitter being a random number in [0, 1).
func backoff(n int, jitter float64) time.Duration {
	d := retryBase << (n - 1)
	d = time.Duration(float64(d) * (0.5 + jitter))
	return min(d, maxRetryWait)
}

// answerHeader returns the NHN result header at the start of a JSON answer
// (nil for a certificate file, or JSON without one), reading no further
// than the header: the answer is decoded again by its caller.
func answerHeader(header http.Header, body []byte) *resultHeader {
	if !looksJSON(header.Get("Content-Type"), body) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil
		}
		if key == "header" {
			var h resultHeader
			if dec.Decode(&h) != nil {
				return nil
			}
			return &h
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return nil
		}
	}
	return nil
}
