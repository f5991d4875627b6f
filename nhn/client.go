package nhn

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
)

const (
	// listPageSize is asked of NHN per list page; NHN may answer with less
	// and says so in body.pageSize.
	listPageSize = 100
	// listParallel bounds concurrent page requests: enough to list 10,000
	// certificates in a few round trips, few enough not to trip NHN's rate
	// limits.
	listParallel = 8
	// maxListPages refuses an answer that claims absurdly many pages.
	maxListPages = 10000

	maxJSONBody = 8 << 20 // one list page
)

// MaxFileSize bounds a certificate file. NHN accepts uploads of at most
// 512 KB; twice that leaves room for any encoding slack.
const MaxFileSize = 1 << 20

// API versions of Certificate Manager: v1.3 authenticates with a User
// Access Key token (token.go), v1.1 with the key in two headers.
const (
	V11 = "v1.1"
	V13 = "v1.3"
)

// Config is what the client needs: where NHN is, which API version it
// speaks, the credentials and the bound of one attempt.
type Config struct {
	APIVersion      string
	Endpoint        string
	AuthEndpoint    string
	AppKey          string
	AccessKeyID     string
	SecretAccessKey string
	Timeout         time.Duration
	UserAgent       string

	// Logger gets the client's debug lines (nil: none).
	Logger hclog.Logger
	// Observer is told of every request sent (nil: none).
	Observer Observer
	// Transport sends the requests (nil: one tuned for NHN: keep-alive,
	// room for the parallel list pages).
	Transport http.RoundTripper
	// Sleep waits between attempts (nil: a timer that ctx ends early);
	// tests replace it so as not to wait.
	Sleep func(ctx context.Context, d time.Duration) error
	// ListBound lowers the bound of one list below the contract's (64 MiB,
	// 100,000 certificates); a zero field, or one above the contract's,
	// is the contract's. Tests lower it.
	ListBound ListBound
}

// Client talks to NHN Cloud Certificate Manager: the token service for
// v1.3, the list and file endpoints for both API versions. It is safe for
// concurrent use.
type Client struct {
	cfg    Config
	http   *http.Client
	logger hclog.Logger

	tokenMu      sync.Mutex
	token        string
	tokenExpiry  time.Time // when the token is renewed: shortly before it expires
	tokenExpires time.Time // when NHN said it expires (for status)
	tokenFlight  singleflight.Group

	// sleep waits between attempts, jitter spreads the waits (a number in
	// [0, 1)); tests replace both.
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func() float64
	// listFlight shares one walk of NHN's pages among concurrent lists
	// of the same status; listBound is the bound of one list (tests
	// lower it).
	listFlight singleflight.Group
	listBound  listBound
	// closed is set by Close. inflight holds the cancel of every call
	// under way (sendMu guards both): Close cancels them before it
	// returns, and no call starts after it.
	closed   atomic.Bool
	sendMu   sync.Mutex
	inflight map[uint64]context.CancelFunc
	nextID   uint64
}

type resultHeader struct {
	IsSuccessful  *bool  `json:"isSuccessful"`
	ResultCode    int    `json:"resultCode"`
	ResultMessage string `json:"resultMessage"`
}

type listAnswer struct {
	Header *resultHeader `json:"header"`
	Body   struct {
		TotalCount  int           `json:"totalCount"`
		TotalPage   int           `json:"totalPage"`
		CurrentPage int           `json:"currentPage"`
		PageSize    int           `json:"pageSize"`
		Data        []Certificate `json:"data"`
	} `json:"body"`
	size int // bytes of the answer
}

// New returns a client for cfg.
func New(cfg Config) *Client {
	transport := cfg.Transport
	if transport == nil {
		transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          32,
			MaxIdleConnsPerHost:   listParallel * 2,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	sleep := cfg.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	return &Client{
		cfg:       cfg,
		http:      &http.Client{Transport: transport, CheckRedirect: noRedirect},
		logger:    logger,
		sleep:     sleep,
		jitter:    rand.Float64,
		listBound: boundOf(cfg.ListBound),
	}
}

// observe tells the observer of one request sent.
func (c *Client) observe(call Call, o Outcome, d time.Duration) {
	if c.cfg.Observer != nil {
		c.cfg.Observer.Request(call, o, d)
	}
}

// Close drops the client's connections: the idle ones now, and each one a
// request in flight gives back, when it does (the session was replaced or
// the backend cleaned up: nothing may linger until IdleConnTimeout).
//
// It also ends the client's credentials (CONTRACT: once DELETE config, or
// a write that changes the identity, returns, "no request to NHN that
// carries them, or a token issued for them, starts ... (a token exchange
// in flight included)"): every call under way, a detached token exchange
// included, is cancelled before Close returns, and no call starts
// afterwards; a retry loop stops at once instead of waiting out its bound.
func (c *Client) Close() {
	c.sendMu.Lock()
	// Cancelled before closed is set: a request that sees the client
	// closed has a cancelled context (the model test relies on it).
	for _, cancel := range c.inflight {
		cancel()
	}
	c.inflight = nil
	c.closed.Store(true)
	c.sendMu.Unlock()
	c.http.CloseIdleConnections()
}

// errClientClosed is a call refused because the client was closed.
func errClientClosed(op string) *Error {
	return &Error{Op: op, Message: "the configuration changed or was deleted; the request was not sent"}
}

// track registers a call's cancel; false when the client is closed (the
// call must not start). untrack is called when the call ends.
func (c *Client) track(cancel context.CancelFunc) (untrack func(), ok bool) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.closed.Load() {
		return nil, false
	}
	if c.inflight == nil {
		c.inflight = map[uint64]context.CancelFunc{}
	}
	c.nextID++
	id := c.nextID
	c.inflight[id] = cancel
	return func() {
		c.sendMu.Lock()
		delete(c.inflight, id)
		c.sendMu.Unlock()
	}, true
}

// Closed reports whether Close was called.
func (c *Client) Closed() bool { return c.closed.Load() }

// afterRequest closes a connection a request gave back to a closed client.
func (c *Client) afterRequest() {
	if c.closed.Load() {
		c.http.CloseIdleConnections()
	}
}

func (c *Client) certsURL() string {
	return strings.TrimRight(c.cfg.Endpoint, "/") + "/certmanager/" + c.cfg.APIVersion +
		"/appkeys/" + url.PathEscape(c.cfg.AppKey) + "/certificates"
}

// walkList returns every certificate with the given status (ALL,
// EXPIRED or UNEXPIRED), across all pages, sorted by name, each name once;
// what NHN answers adds up to at most the list bound (list_bound.go).
func (c *Client) walkList(ctx context.Context, status string) ([]Certificate, error) {
	var budget listBudget
	first, err := c.listPage(ctx, status, 1, listPageSize)
	if err != nil {
		return nil, err
	}
	if err := c.spend(&budget, first, first.Body.TotalCount); err != nil {
		return nil, err
	}
	pages := first.Body.TotalPage
	if pages > maxListPages {
		return nil, &Error{Op: "listing certificates", Message: fmt.Sprintf("answer claims %d pages; at most %d are read", pages, maxListPages)}
	}
	results := make([][]Certificate, max(pages, 1))
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
				if err := c.spend(&budget, a, 0); err != nil {
					return err
				}
				results[p-1] = a.Body.Data
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	return MergePages(results), nil
}

func (c *Client) listPage(ctx context.Context, status string, page, size int) (*listAnswer, error) {
	q := url.Values{}
	q.Set("pageSize", strconv.Itoa(size))
	q.Set("pageNum", strconv.Itoa(page))
	q.Set("status", status)
	u := c.certsURL() + "?" + q.Encode()
	op := fmt.Sprintf("listing certificates (page %d)", page)
	body, _, err := c.do(ctx, CallList, op, true, maxJSONBody, func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	})
	if err != nil {
		return nil, err
	}
	a, err := decodeListPage(op, body)
	if a != nil {
		a.size = len(body)
	}
	return a, err
}

// decodeListPage checks and decodes one list answer.
func decodeListPage(op string, body []byte) (*listAnswer, error) {
	var a listAnswer
	if err := json.Unmarshal(body, &a); err != nil || a.Header == nil {
		return nil, &Error{Op: op, HTTPStatus: http.StatusOK, Message: "answer is not the expected JSON"}
	}
	if err := headerError(op, http.StatusOK, a.Header); err != nil {
		return nil, err
	}
	if a.Body.TotalPage < 0 || a.Body.TotalCount < 0 || a.Body.PageSize < 0 {
		return nil, &Error{Op: op, HTTPStatus: http.StatusOK, Message: "answer has negative page counts"}
	}
	return &a, nil
}

// DownloadFile returns the certificate file of name. An error answer in
// JSON where the file was expected is returned as an Error.
//
// It downloads by name, not by certificateId (v1.3's third call), on
// purpose: the name is what the caller asked for and what a policy
// granted, while an ID comes from the latest list, which may be older than
// a delete and re-register under the same name; by ID the engine could
// serve another certificate under this name. The ID is shown, not used.
func (c *Client) DownloadFile(ctx context.Context, name string) ([]byte, error) {
	// One percent-encoded path segment: a space, '%', '?' or '#' in the
	// name is data, not URL syntax. the engine refused '/' and '\'.
	u := c.certsURL() + "/" + PathName(name) + "/files"
	op := "downloading certificate " + safetext.Quote(name)
	body, header, err := c.do(ctx, CallDownload, op, true, MaxFileSize, func(ctx context.Context) (*http.Request, error) {
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
			return nil, &Error{Op: op, HTTPStatus: http.StatusOK, Message: "answer is JSON but not NHN's result format"}
		}
		if err := headerError(op, http.StatusOK, a.Header); err != nil {
			return nil, err
		}
		return nil, &Error{Op: op, HTTPStatus: http.StatusOK, Message: "answer is a JSON success, not a certificate file"}
	}
	return body, nil
}

// MergePages joins list pages into one list sorted by name. A name seen
// twice (the list changed between pages) is kept once, as the earlier
// page had it.
func MergePages(pages [][]Certificate) []Certificate {
	n := 0
	for _, p := range pages {
		n += len(p)
	}
	out := make([]Certificate, 0, n)
	for _, p := range pages {
		out = append(out, p...)
	}
	slices.SortStableFunc(out, func(a, b Certificate) int { return strings.Compare(a.Name, b.Name) })
	return slices.CompactFunc(out, func(a, b Certificate) bool { return a.Name == b.Name })
}

func looksJSON(contentType string, body []byte) bool {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "application/json") {
		return true
	}
	return bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{"))
}
