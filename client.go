package nhncert

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

// nhnClient is all the engine asks of NHN Cloud Certificate Manager. The
// HTTP client below is the one implementation; the protocol detail (tokens,
// retries, pages, error answers) stays behind it.
type nhnClient interface {
	// ListCertificates returns every certificate with the given status
	// (ALL, EXPIRED or UNEXPIRED), across all pages, sorted by name, and
	// the names left out as unservable (see validateName).
	ListCertificates(ctx context.Context, status string) ([]certInfo, []string, error)
	// DownloadFile returns the certificate file of name.
	DownloadFile(ctx context.Context, name string) ([]byte, error)
	// close releases idle connections; the session that owns the client
	// is being replaced.
	close()
	// tokenExpiresAt is when the v1.3 token held expires; zero when none
	// is held (or v1.1, which has no token). For status: never the token.
	tokenExpiresAt() time.Time
}

var _ nhnClient = (*client)(nil)

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
	// closed is set by close. inflight holds the cancel of every attempt
	// under way (sendMu guards both): close cancels them before it
	// returns, and no attempt starts after it.
	closed   atomic.Bool
	sendMu   sync.Mutex
	inflight map[uint64]context.CancelFunc
	nextID   uint64
	// metrics counts the requests sent (nil: not counted).
	metrics *mountMetrics
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
	size int // bytes of the answer
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
		cfg:       cfg,
		http:      &http.Client{Transport: transport, CheckRedirect: noRedirect},
		logger:    logger,
		sleep:     sleepCtx,
		jitter:    rand.Float64,
		listBound: listBound{bytes: maxListBytes, certs: maxListCerts},
	}
}

// close drops the client's connections: the idle ones now, and each one a
// request in flight gives back, when it does (the session was replaced or
// the backend cleaned up: nothing may linger until IdleConnTimeout).
//
// It also ends the client's credentials (CONTRACT: once DELETE config, or
// a write that changes the identity, returns, "no request to NHN that
// carries them, or a token issued for them, starts ... (a token exchange
// in flight included)"): every attempt under way, a detached token
// exchange included, is cancelled before close returns, and no attempt
// starts afterwards; a retry loop stops at its next attempt instead of
// waiting out its bound.
func (c *client) close() {
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
func errClientClosed(op string) *upstreamError {
	return &upstreamError{Op: op, Message: "the configuration changed or was deleted; the request was not sent"}
}

// track registers a call's cancel; false when the client is closed (the
// call must not start). untrack is called when the call ends.
func (c *client) track(cancel context.CancelFunc) (untrack func(), ok bool) {
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

// afterRequest closes a connection a request gave back to a closed client.
func (c *client) afterRequest() {
	if c.closed.Load() {
		c.http.CloseIdleConnections()
	}
}

func (c *client) certsURL() string {
	return strings.TrimRight(c.cfg.Endpoint, "/") + "/certmanager/" + c.cfg.APIVersion +
		"/appkeys/" + url.PathEscape(c.cfg.AppKey) + "/certificates"
}

// walkList returns every certificate with the given status (ALL,
// EXPIRED or UNEXPIRED), across all pages, sorted by name, without
// duplicates, and the names left out as unservable; what NHN answers adds
// up to at most the list bound (client_list.go).
func (c *client) walkList(ctx context.Context, status string) ([]certInfo, []string, error) {
	var budget listBudget
	first, err := c.listPage(ctx, status, 1, listPageSize)
	if err != nil {
		return nil, nil, err
	}
	if err := c.spend(&budget, first, first.Body.TotalCount); err != nil {
		return nil, nil, err
	}
	pages := first.Body.TotalPage
	if pages > maxListPages {
		return nil, nil, &upstreamError{Op: "listing certificates", Message: fmt.Sprintf("answer claims %d pages; at most %d are read", pages, maxListPages)}
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
				if err := c.spend(&budget, a, 0); err != nil {
					return err
				}
				results[p-1] = a.Body.Data
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, nil, err
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
	body, _, err := c.do(ctx, callList, op, true, maxJSONBody, func(ctx context.Context) (*http.Request, error) {
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
//
// It downloads by name, not by certificateId (v1.3's third call), on
// purpose: the name is what the caller asked for and what a policy
// granted, while an ID comes from the latest list, which may be older than
// a delete and re-register under the same name; by ID the engine could
// serve another certificate under this name. The ID is shown, not used.
func (c *client) DownloadFile(ctx context.Context, name string) ([]byte, error) {
	// One percent-encoded path segment: a space, '%', '?' or '#' in the
	// name is data, not URL syntax. validateName refused '/' and '\'.
	u := c.certsURL() + "/" + pathName(name) + "/files"
	op := "downloading certificate " + quoteName(name)
	body, header, err := c.do(ctx, callDownload, op, true, maxFileSize, func(ctx context.Context) (*http.Request, error) {
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
// cannot serve (see validateName) are left out and returned, sorted and
// each once, for the list's warning.
func mergeCertInfos(pages [][]certInfo) (infos []certInfo, unservable []string) {
	n := 0
	for _, p := range pages {
		n += len(p)
	}
	out := make([]certInfo, 0, n)
	for _, p := range pages {
		for _, c := range p {
			if validateName(c.Name) != nil {
				unservable = append(unservable, c.Name)
				continue
			}
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b certInfo) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(unservable)
	return slices.CompactFunc(out, func(a, b certInfo) bool { return a.Name == b.Name }), slices.Compact(unservable)
}

func looksJSON(contentType string, body []byte) bool {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "application/json") {
		return true
	}
	return bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{"))
}
