package nhncert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
)

const (
	// maxAttempts is how often one upstream call is tried when NHN answers
	// 5xx or 429 or cannot be reached.
	maxAttempts = 3
	// retryBase is the first backoff; it doubles per attempt, with jitter.
	retryBase = 250 * time.Millisecond
	// maxRetryWait caps one backoff, Retry-After included.
	maxRetryWait = 10 * time.Second

	// listPageSize is asked of NHN per list page; NHN may answer with less
	// and says so in body.pageSize.
	listPageSize = 100
	// listParallel bounds concurrent page requests: enough to list 10,000
	// certificates in a few round trips, few enough not to trip NHN's rate
	// limits.
	listParallel = 8
	// maxListPages refuses an answer that claims absurdly many pages.
	maxListPages = 10000

	maxJSONBody  = 8 << 20 // one list page
	maxTokenBody = 64 << 10
)

// clientConfig is what the client needs from the mount's config.
type clientConfig struct {
	APIVersion      string
	Endpoint        string
	AuthEndpoint    string
	AppKey          string
	AccessKeyID     string
	SecretAccessKey string
	Timeout         time.Duration
	UserAgent       string
}

// client talks to NHN Cloud Certificate Manager: the token service for
// v1.3, the list and file endpoints for both API versions.
type client struct {
	cfg    clientConfig
	http   *http.Client
	logger hclog.Logger

	tokenMu     sync.Mutex
	token       string
	tokenExpiry time.Time
	tokenFlight singleflight.Group

	// sleep waits between attempts; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// certInfo is one entry of the certificate list.
type certInfo struct {
	Name               string   `json:"certificateName"`
	Authority          string   `json:"authority"`
	Domains            []string `json:"domains"`
	SignatureAlgorithm string   `json:"signatureAlgorithm"`
	FileCreationDate   string   `json:"fileCreationDate"`
	ExpirationDate     string   `json:"expirationDate"`
}

type resultHeader struct {
	IsSuccessful  *bool  `json:"isSuccessful"`
	ResultCode    int    `json:"resultCode"`
	ResultMessage string `json:"resultMessage"`
}

type listAnswer struct {
	Header *resultHeader `json:"header"`
	Body   struct {
		TotalCount  int        `json:"totalCount"`
		TotalPage   int        `json:"totalPage"`
		CurrentPage int        `json:"currentPage"`
		PageSize    int        `json:"pageSize"`
		Data        []certInfo `json:"data"`
	} `json:"body"`
}

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

func newClient(cfg clientConfig, logger hclog.Logger) *client {
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   listParallel * 2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &client{
		cfg:    cfg,
		http:   &http.Client{Transport: transport, CheckRedirect: noRedirect},
		logger: logger,
		sleep:  sleepCtx,
	}
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

func (c *client) close() { c.http.CloseIdleConnections() }

func (c *client) certsURL() string {
	return strings.TrimRight(c.cfg.Endpoint, "/") + "/certmanager/" + c.cfg.APIVersion +
		"/appkeys/" + url.PathEscape(c.cfg.AppKey) + "/certificates"
}

// ListCertificates returns every certificate with the given status (ALL,
// EXPIRED or UNEXPIRED), across all pages, sorted by name, without
// duplicates, and how many names were left out as unservable.
func (c *client) ListCertificates(ctx context.Context, status string) ([]certInfo, int, error) {
	first, err := c.listPage(ctx, status, 1, listPageSize)
	if err != nil {
		return nil, 0, err
	}
	pages := first.Body.TotalPage
	if pages > maxListPages {
		return nil, 0, &upstreamError{Op: "listing certificates", Message: fmt.Sprintf("answer claims %d pages; at most %d are read", pages, maxListPages)}
	}
	results := make([][]certInfo, max(pages, 1))
	results[0] = first.Body.Data
	if pages > 1 {
		// Ask for the rest with the page size NHN actually used.
		size := first.Body.PageSize
		if size <= 0 {
			size = listPageSize
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(listParallel)
		for p := 2; p <= pages; p++ {
			g.Go(func() error {
				a, err := c.listPage(gctx, status, p, size)
				if err != nil {
					return err
				}
				results[p-1] = a.Body.Data
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, 0, err
		}
	}
	infos, unservable := mergeCertInfos(results)
	return infos, unservable, nil
}

func (c *client) listPage(ctx context.Context, status string, page, size int) (*listAnswer, error) {
	q := url.Values{}
	q.Set("pageSize", strconv.Itoa(size))
	q.Set("pageNum", strconv.Itoa(page))
	q.Set("status", status)
	u := c.certsURL() + "?" + q.Encode()
	op := fmt.Sprintf("listing certificates (page %d)", page)
	body, _, err := c.do(ctx, op, true, maxJSONBody, func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	})
	if err != nil {
		return nil, err
	}
	return decodeListPage(op, body)
}

// decodeListPage checks and decodes one list answer.
func decodeListPage(op string, body []byte) (*listAnswer, error) {
	var a listAnswer
	if err := json.Unmarshal(body, &a); err != nil || a.Header == nil {
		return nil, &upstreamError{Op: op, HTTPStatus: http.StatusOK, Message: "answer is not the expected JSON"}
	}
	if err := headerError(op, http.StatusOK, a.Header); err != nil {
		return nil, err
	}
	if a.Body.TotalPage < 0 || a.Body.TotalCount < 0 || a.Body.PageSize < 0 {
		return nil, &upstreamError{Op: op, HTTPStatus: http.StatusOK, Message: "answer has negative page counts"}
	}
	return &a, nil
}

// DownloadFile returns the certificate file of name. An error answer in
// JSON where the file was expected is returned as an upstreamError.
func (c *client) DownloadFile(ctx context.Context, name string) ([]byte, error) {
	// validateName allowed only characters that are literal in a path
	// segment, so '*' goes as it is, the way NHN's own console links it.
	u := c.certsURL() + "/" + name + "/files"
	op := fmt.Sprintf("downloading certificate %q", name)
	body, header, err := c.do(ctx, op, true, maxFileSize, func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	})
	if err != nil {
		return nil, err
	}
	if looksJSON(header.Get("Content-Type"), body) {
		var a struct {
			Header *resultHeader `json:"header"`
		}
		if err := json.Unmarshal(body, &a); err != nil || a.Header == nil {
			return nil, &upstreamError{Op: op, HTTPStatus: http.StatusOK, Message: "answer is JSON but not NHN's result format"}
		}
		if err := headerError(op, http.StatusOK, a.Header); err != nil {
			return nil, err
		}
		return nil, &upstreamError{Op: op, HTTPStatus: http.StatusOK, Message: "answer is a JSON success, not a certificate file"}
	}
	return body, nil
}

// mergeCertInfos joins list pages into one list sorted by name. A name seen
// twice (the list changed between pages) is kept once. Names this engine
// cannot serve (see validateName) are left out and counted.
func mergeCertInfos(pages [][]certInfo) (infos []certInfo, unservable int) {
	n := 0
	for _, p := range pages {
		n += len(p)
	}
	out := make([]certInfo, 0, n)
	for _, p := range pages {
		for _, c := range p {
			if validateName(c.Name) != nil {
				unservable++
				continue
			}
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b certInfo) int { return strings.Compare(a.Name, b.Name) })
	return slices.CompactFunc(out, func(a, b certInfo) bool { return a.Name == b.Name }), unservable
}

func looksJSON(contentType string, body []byte) bool {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "application/json") {
		return true
	}
	return bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{"))
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

// do sends a request built by build, with authentication, retrying 5xx,
// 429 and transport errors up to maxAttempts times with backoff and jitter
// inside an overall bound of Timeout x maxAttempts; each attempt is bounded
// by Timeout. On v1.3 a 401 makes it drop the token, get a new one and try
// once more. It returns the body and header of a 2xx answer, the body read
// up to limit bytes.
func (c *client) do(ctx context.Context, op string, authenticate bool, limit int64, build func(context.Context) (*http.Request, error)) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout*maxAttempts)
	defer cancel()

	var (
		lastErr    *upstreamError
		retryAfter time.Duration
		reissued   bool
	)
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if lastErr != nil && attempt > 1 {
			wait := max(backoff(attempt-1), retryAfter)
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				break // no time left for another attempt
			}
			if c.sleep(ctx, wait) != nil {
				break
			}
		}
		retryAfter = 0
		body, header, status, token, err := c.attempt(ctx, authenticate, limit, build)
		if err != nil {
			var ue *upstreamError
			if errors.As(err, &ue) {
				if ue.Op == "" {
					ue.Op = op
				}
				return nil, nil, ue // not worth retrying: bad credentials, oversized answer
			}
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil, nil, &upstreamError{Op: op, Message: "request cancelled"}
			}
			lastErr = &upstreamError{Op: op, Message: transportMessage(err)}
			c.logger.Debug("upstream call failed", "op", op, "attempt", attempt, "error", lastErr.Message)
			continue
		}
		switch {
		case status >= 200 && status < 300:
			return body, header, nil
		case status == http.StatusUnauthorized && authenticate && c.cfg.APIVersion == apiV13 && !reissued:
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
		lastErr = &upstreamError{Op: op, Message: "no attempt could be made in time"}
	}
	lastErr.Unreachable = true
	return nil, nil, lastErr
}

// attempt makes one request. A transport error is returned as is (to be
// retried); an *upstreamError is final.
func (c *client) attempt(ctx context.Context, authenticate bool, limit int64, build func(context.Context) (*http.Request, error)) (body []byte, header http.Header, status int, token string, err error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := build(actx)
	if err != nil {
		return nil, nil, 0, "", &upstreamError{Message: "cannot build the request: " + transportMessage(err)}
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if authenticate {
		switch c.cfg.APIVersion {
		case apiV11:
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
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, 0, token, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, 0, token, err
	}
	if int64(len(body)) > limit {
		return nil, nil, 0, token, &upstreamError{HTTPStatus: resp.StatusCode, Message: fmt.Sprintf("answer is larger than %d bytes", limit)}
	}
	return body, resp.Header, resp.StatusCode, token, nil
}

// statusError describes a non-2xx answer, with NHN's result code and
// message when the body has them.
func statusError(op string, status int, body []byte) *upstreamError {
	e := &upstreamError{Op: op, HTTPStatus: status}
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
			e.Message = cleanText(a.Header.ResultMessage, 200)
		case a.Error != "":
			e.Message = cleanText(strings.TrimSpace(a.Error+" "+a.ErrorDescription), 200)
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
	return cleanText(err.Error(), 200)
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
// scaled by a random factor in [0.5, 1.5).
func backoff(n int) time.Duration {
	d := retryBase << (n - 1)
	d = time.Duration(float64(d) * (0.5 + rand.Float64()))
	return min(d, maxRetryWait)
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

// bearer returns a v1.3 token, issuing one when there is none or it is
// close to expiry. Concurrent callers share one exchange.
func (c *client) bearer(ctx context.Context) (string, error) {
	if t := c.currentToken(); t != "" {
		return t, nil
	}
	v, err, _ := c.tokenFlight.Do("token", func() (any, error) {
		if t := c.currentToken(); t != "" {
			return t, nil
		}
		// The exchange outlives a caller that gives up, so the others
		// waiting on it still get the token.
		return c.issueToken(context.WithoutCancel(ctx))
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (c *client) currentToken() string {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token != "" && time.Now().Before(c.tokenExpiry) {
		return c.token
	}
	return ""
}

// dropToken forgets token unless another caller already replaced it.
func (c *client) dropToken(token string) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if token != "" && c.token == token {
		c.token = ""
	}
}

type tokenAnswer struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
}

func (c *client) issueToken(ctx context.Context) (string, error) {
	const op = "issuing a User Access Key token"
	u := strings.TrimRight(c.cfg.AuthEndpoint, "/") + "/oauth2/token/create"
	form := url.Values{"grant_type": {"client_credentials"}}.Encode()
	body, _, err := c.do(ctx, op, false, maxTokenBody, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.cfg.AccessKeyID, c.cfg.SecretAccessKey)
		return req, nil
	})
	if err != nil {
		return "", err
	}
	var a tokenAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return "", &upstreamError{Op: op, HTTPStatus: http.StatusOK, Message: "answer is not the expected JSON"}
	}
	if a.AccessToken == "" {
		return "", &upstreamError{Op: op, HTTPStatus: http.StatusOK, Message: "answer has no access_token"}
	}
	if a.TokenType != "" && !strings.EqualFold(a.TokenType, "Bearer") {
		return "", &upstreamError{Op: op, HTTPStatus: http.StatusOK, Message: fmt.Sprintf("unexpected token_type %q", cleanText(a.TokenType, 20))}
	}
	lifetime := 86400 * time.Second // NHN's default when the answer has none
	if len(a.ExpiresIn) > 0 {
		secs, err := strconv.ParseFloat(strings.Trim(string(a.ExpiresIn), `"`), 64)
		if err != nil || secs <= 0 {
			return "", &upstreamError{Op: op, HTTPStatus: http.StatusOK, Message: "answer has an invalid expires_in"}
		}
		lifetime = time.Duration(secs * float64(time.Second))
	}
	// Renew shortly before expiry: a tenth of the lifetime, at most a minute.
	margin := min(lifetime/10, time.Minute)
	c.tokenMu.Lock()
	c.token = a.AccessToken
	c.tokenExpiry = time.Now().Add(lifetime - margin)
	c.tokenMu.Unlock()
	c.logger.Debug("issued a User Access Key token", "expires_in", lifetime.String())
	return a.AccessToken, nil
}
