package nhn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

const (
	testAppKey    = "test-app-key"
	testKeyID     = "test-access-key-id"
	testSecret    = "test-secret-access-key-do-not-leak"
	testUserAgent = "vault-plugin-secrets-nhncert/test"
)

// clientHarness is a client and an emulator, with every request the
// emulator received and every wait the client made between attempts.
type clientHarness struct {
	t   *testing.T
	emu *emulator.Server
	srv *testkit.Recorder
	c   *Client

	mu    sync.Mutex
	waits []time.Duration
}

func newClientHarness(t *testing.T, apiVersion string, opts ...func(*emulator.Options)) *clientHarness {
	eo := emulator.Options{AppKey: testAppKey, AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	for _, o := range opts {
		o(&eo)
	}
	ch := &clientHarness{t: t, emu: emulator.New(eo)}
	ch.srv = testkit.NewRecorder(t, ch.emu)
	ch.c = New(Config{
		APIVersion: apiVersion, Endpoint: ch.srv.URL, AuthEndpoint: ch.srv.URL,
		AppKey: testAppKey, AccessKeyID: testKeyID, SecretAccessKey: testSecret,
		Timeout: 2 * time.Second, UserAgent: testUserAgent,
	})
	ch.c.sleep = func(ctx context.Context, d time.Duration) error {
		ch.mu.Lock()
		ch.waits = append(ch.waits, d)
		ch.mu.Unlock()
		return ctx.Err()
	}
	t.Cleanup(ch.c.Close)
	return ch
}

func (ch *clientHarness) put(name string) *emulator.Chain {
	c, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: name})
	require.NoError(ch.t, err)
	ch.emu.PutChain(name, c, emulator.FileOptions{})
	return c
}

// requireClean fails if err's text holds a credential, a token or the app
// key (which would be there if a URL leaked into it).
func (ch *clientHarness) requireClean(err error) {
	ch.t.Helper()
	require.Error(ch.t, err)
	msg := err.Error()
	require.NotContains(ch.t, msg, testSecret)
	require.NotContains(ch.t, msg, testAppKey)
	require.NotContains(ch.t, msg, ch.srv.URL)
	for _, r := range ch.srv.Requests() {
		if v := r.Header.Get("X-NHN-AUTHORIZATION"); v != "" {
			require.NotContains(ch.t, msg, strings.TrimPrefix(v, "Bearer "))
		}
	}
}

func TestClientV13ExchangesTokenOnce(t *testing.T) {
	ch := newClientHarness(t, V13)
	leaf := ch.put("example.com")
	for range 5 {
		file, err := ch.c.DownloadFile(context.Background(), "example.com")
		require.NoError(t, err)
		require.Contains(t, string(file), strings.TrimSpace(string(leaf.LeafPEM)))
	}
	_, err := ch.c.ListCertificates(context.Background(), "ALL")
	require.NoError(t, err)
	require.EqualValues(t, 1, ch.emu.Stats().TokenIssued)

	for _, r := range ch.srv.Requests() {
		require.Equal(t, testUserAgent, r.Header.Get("User-Agent"))
		require.Empty(t, r.Header.Get("X-TC-AUTHENTICATION-SECRET"), "v1.3 never sends the secret to Certificate Manager")
		if r.URL.Path == "/oauth2/token/create" {
			id, secret, ok := r.BasicAuth()
			require.True(t, ok)
			require.Equal(t, testKeyID, id)
			require.Equal(t, testSecret, secret)
			require.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
		} else {
			require.True(t, strings.HasPrefix(r.Header.Get("X-NHN-AUTHORIZATION"), "Bearer "))
			require.True(t, strings.HasPrefix(r.URL.Path, "/certmanager/v1.3/appkeys/"+testAppKey+"/certificates"))
		}
	}
}

func TestClientConcurrentCallersShareOneTokenExchange(t *testing.T) {
	ch := newClientHarness(t, V13)
	ch.put("example.com")
	ch.emu.SetLatency(100 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = ch.c.DownloadFile(context.Background(), "example.com")
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, ch.emu.Stats().TokenIssued)
	require.EqualValues(t, 50, ch.emu.Stats().FileCalls, "the client itself does not deduplicate downloads; the cache does")
}

func TestClientReissuesExpiredOrRevokedToken(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	ch := newClientHarness(t, V13, func(o *emulator.Options) {
		o.TokenTTL = time.Hour
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	ch.put("example.com")
	_, err := ch.c.DownloadFile(context.Background(), "example.com")
	require.NoError(t, err)

	// NHN's clock passes the token's expiry before ours does: NHN answers
	// 401, the client issues a new token once and retries.
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	_, err = ch.c.DownloadFile(context.Background(), "example.com")
	require.NoError(t, err)
	require.EqualValues(t, 2, ch.emu.Stats().TokenIssued)
	require.EqualValues(t, 1, ch.emu.Stats().AuthRejected)

	ch.emu.RevokeTokens()
	_, err = ch.c.ListCertificates(context.Background(), "ALL")
	require.NoError(t, err)
	require.EqualValues(t, 3, ch.emu.Stats().TokenIssued)
	require.Empty(t, ch.waits, "a re-issue is not a retry and waits for nothing")
}

func TestClientRenewsTokenBeforeExpiry(t *testing.T) {
	ch := newClientHarness(t, V13, func(o *emulator.Options) { o.TokenTTL = 60 * time.Second })
	ch.put("example.com")
	_, err := ch.c.DownloadFile(context.Background(), "example.com")
	require.NoError(t, err)
	ch.c.tokenMu.Lock()
	left := time.Until(ch.c.tokenExpiry)
	ch.c.tokenMu.Unlock()
	// expires_in=60: renewed a tenth of the lifetime early.
	require.InDelta(t, 54, left.Seconds(), 2)

	ch.c.tokenMu.Lock()
	ch.c.tokenExpiry = time.Now().Add(-time.Second) // as if 54s had passed
	ch.c.tokenMu.Unlock()
	_, err = ch.c.DownloadFile(context.Background(), "example.com")
	require.NoError(t, err)
	require.EqualValues(t, 2, ch.emu.Stats().TokenIssued)
	require.Zero(t, ch.emu.Stats().AuthRejected, "renewed before NHN had to refuse it")
}

func TestClientBadCredentialsAreNotRetried(t *testing.T) {
	ch := newClientHarness(t, V13)
	ch.c.cfg.SecretAccessKey = "wrong-secret"
	_, err := ch.c.DownloadFile(context.Background(), "example.com")
	ch.requireClean(err)
	require.NotContains(t, err.Error(), "wrong-secret")
	require.Contains(t, err.Error(), "issuing a User Access Key token: HTTP 401")
	require.EqualValues(t, 1, ch.emu.Stats().TokenDenied)
	require.Empty(t, ch.waits)
}

func TestClientV11SendsKeyHeadersAndNoToken(t *testing.T) {
	ch := newClientHarness(t, V11)
	ch.put("example.com")
	_, err := ch.c.DownloadFile(context.Background(), "example.com")
	require.NoError(t, err)
	infos, err := ch.c.ListCertificates(context.Background(), "UNEXPIRED")
	require.NoError(t, err)
	require.Len(t, infos, 1)
	require.Nil(t, infos[0].Domains, "v1.1 lists no domains")
	require.Zero(t, ch.emu.Stats().TokenIssued)
	for _, r := range ch.srv.Requests() {
		require.NotEqual(t, "/oauth2/token/create", r.URL.Path)
		require.Equal(t, testKeyID, r.Header.Get("X-TC-AUTHENTICATION-ID"))
		require.Equal(t, testSecret, r.Header.Get("X-TC-AUTHENTICATION-SECRET"))
		require.Empty(t, r.Header.Get("X-NHN-AUTHORIZATION"))
		require.True(t, strings.HasPrefix(r.URL.Path, "/certmanager/v1.1/"))
	}

	// Wrong keys: a 401 that is not retried and carries no secret.
	ch.c.cfg.SecretAccessKey = "wrong-secret"
	_, err = ch.c.DownloadFile(context.Background(), "example.com")
	ch.requireClean(err)
	require.Contains(t, err.Error(), "HTTP 401")
	require.NotContains(t, err.Error(), "wrong-secret")
	require.EqualValues(t, 1, ch.emu.Stats().AuthRejected)
}

func TestClientResultCodes(t *testing.T) {
	for _, v := range []string{V13, V11} {
		ch := newClientHarness(t, v)
		ch.put("example.com")
		for code := 52000; code <= 52008; code++ {
			ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultResult, Target: "files", ResultCode: code})
			_, err := ch.c.DownloadFile(context.Background(), "example.com")
			ch.requireClean(err)
			require.Contains(t, err.Error(), fmt.Sprintf("resultCode %d: %s", code, emulator.ResultMessages[code]))
			require.Equal(t, code == 52000 || code == 52001, IsNotFound(err), "%d", code)
		}
		ch.emu.ClearFault()
		_, err := ch.c.DownloadFile(context.Background(), "missing.example.com")
		require.True(t, IsNotFound(err), "%v", err)
		require.Empty(t, ch.waits, "result codes are answers, not failures to retry")
	}
}

func TestClientRetries(t *testing.T) {
	t.Run("flaky then fine", func(t *testing.T) {
		ch := newClientHarness(t, V11)
		ch.put("example.com")
		ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultFlaky, Target: "files", Count: 2})
		_, err := ch.c.DownloadFile(context.Background(), "example.com")
		require.NoError(t, err)
		require.EqualValues(t, 3, ch.emu.Stats().FileCalls)
		require.Len(t, ch.waits, 2)
		// Backoff doubles, with jitter in [0.5, 1.5).
		require.GreaterOrEqual(t, ch.waits[0], retryBase/2)
		require.Less(t, ch.waits[0], retryBase*3/2)
		require.GreaterOrEqual(t, ch.waits[1], retryBase)
		require.Less(t, ch.waits[1], retryBase*3)
	})
	t.Run("backoff scales with the jitter drawn", func(t *testing.T) {
		for jitter, want := range map[float64][]time.Duration{
			0:    {retryBase / 2, retryBase},
			0.5:  {retryBase, 2 * retryBase},
			0.75: {retryBase * 5 / 4, retryBase * 5 / 2},
		} {
			ch := newClientHarness(t, V11)
			ch.put("example.com")
			ch.c.jitter = func() float64 { return jitter }
			ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultFlaky, Target: "files", Count: 2})
			_, err := ch.c.DownloadFile(context.Background(), "example.com")
			require.NoError(t, err)
			require.Equal(t, want, ch.waits, "jitter %v", jitter)
		}
	})
	t.Run("down", func(t *testing.T) {
		ch := newClientHarness(t, V11)
		ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
		_, err := ch.c.ListCertificates(context.Background(), "ALL")
		ch.requireClean(err)
		var ue *Error
		require.True(t, errors.As(err, &ue))
		require.True(t, ue.Unreachable)
		require.Equal(t, 503, ue.HTTPStatus)
		require.EqualValues(t, MaxAttempts, ch.emu.Stats().ListCalls)
	})
	t.Run("connection reset", func(t *testing.T) {
		ch := newClientHarness(t, V11)
		ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultReset})
		_, err := ch.c.DownloadFile(context.Background(), "example.com")
		ch.requireClean(err)
		require.Contains(t, err.Error(), "is unreachable")
		require.EqualValues(t, MaxAttempts, ch.emu.Stats().FileCalls)
	})
	t.Run("connection refused", func(t *testing.T) {
		ch := newClientHarness(t, V11)
		ch.srv.Close()
		_, err := ch.c.DownloadFile(context.Background(), "example.com")
		ch.requireClean(err)
		require.Contains(t, err.Error(), "is unreachable")
		require.Contains(t, err.Error(), "connection refused")
		require.Len(t, ch.waits, MaxAttempts-1)
	})
	t.Run("429 honours Retry-After", func(t *testing.T) {
		ch := newClientHarness(t, V11)
		ch.put("example.com")
		ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultTooMany, Count: 1, RetryAfter: 3})
		_, err := ch.c.DownloadFile(context.Background(), "example.com")
		require.NoError(t, err)
		require.Equal(t, []time.Duration{3 * time.Second}, ch.waits)
	})
	t.Run("4xx is not retried", func(t *testing.T) {
		ch := newClientHarness(t, V11)
		ch.c.cfg.AppKey = "unknown-app"
		_, err := ch.c.DownloadFile(context.Background(), "example.com")
		require.Error(t, err)
		require.Contains(t, err.Error(), "HTTP 403")
		require.NotContains(t, err.Error(), "unknown-app")
		require.EqualValues(t, 1, ch.emu.Stats().FileCalls)
		require.Empty(t, ch.waits)
	})
	t.Run("slow answers time out per attempt", func(t *testing.T) {
		ch := newClientHarness(t, V11)
		ch.put("example.com")
		// Each attempt is cut at request_timeout and the whole call at
		// request_timeout x MaxAttempts (1.5 s). With the smallest jitter
		// the waits are 125 ms and 250 ms (the harness does not sleep),
		// so a second attempt starts after the first one's 500 ms with a
		// second of budget to spare: only a machine stalled for most of a
		// second could make the call end after one attempt.
		ch.c.cfg.Timeout = 500 * time.Millisecond
		ch.c.jitter = func() float64 { return 0 }
		ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultSlow, Delay: 30 * time.Second})
		_, err := ch.c.DownloadFile(context.Background(), "example.com")
		ch.requireClean(err)
		require.Contains(t, err.Error(), "no answer within request_timeout")
		// A later attempt is dropped when it no longer fits the budget.
		calls := ch.emu.Stats().FileCalls
		require.GreaterOrEqual(t, calls, int64(2), "the first attempt was cut at request_timeout, not at the end of the budget")
		require.LessOrEqual(t, calls, int64(MaxAttempts))
	})
	t.Run("caller cancel stops retrying", func(t *testing.T) {
		ch := newClientHarness(t, V11)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := ch.c.DownloadFile(ctx, "example.com")
		require.Error(t, err)
		require.LessOrEqual(t, len(ch.waits), 1)
	})
}

func TestClientRefusesBadAnswers(t *testing.T) {
	ch := newClientHarness(t, V11)
	ch.put("example.com")

	ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultHuge, Target: "files"})
	_, err := ch.c.DownloadFile(context.Background(), "example.com")
	ch.requireClean(err)
	require.Contains(t, err.Error(), fmt.Sprintf("answer is larger than %d bytes", MaxFileSize))

	ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultGarbage})
	_, err = ch.c.ListCertificates(context.Background(), "ALL")
	ch.requireClean(err)
	require.Contains(t, err.Error(), "not the expected JSON")
	_, err = ch.c.DownloadFile(context.Background(), "example.com")
	ch.requireClean(err)
	require.Contains(t, err.Error(), "not NHN's result format")
	require.Empty(t, ch.waits)
}

func TestClientListsAllPages(t *testing.T) {
	ch := newClientHarness(t, V13, func(o *emulator.Options) { o.MaxPageSize = 10 })
	require.NoError(t, ch.emu.Seed("bulk", 253))
	expired, err := emulator.GenerateChain(emulator.ChainOptions{
		CommonName: "expired.example.com",
		NotBefore:  time.Now().Add(-100 * 24 * time.Hour), NotAfter: time.Now().Add(-10 * 24 * time.Hour),
	})
	require.NoError(t, err)
	ch.emu.PutChain("expired.example.com", expired, emulator.FileOptions{})

	infos, err := ch.c.ListCertificates(context.Background(), "UNEXPIRED")
	require.NoError(t, err)
	require.Len(t, infos, 253)
	require.EqualValues(t, 26, ch.emu.Stats().ListCalls, "253 certificates at 10 per page")
	for i, c := range infos {
		require.Equal(t, fmt.Sprintf("bulk%05d.example.com", i), c.Name)
		require.NotEmpty(t, c.ExpirationDate)
		require.NotEmpty(t, c.Domains)
	}

	all, err := ch.c.ListCertificates(context.Background(), "ALL")
	require.NoError(t, err)
	require.Len(t, all, 254)
	exp, err := ch.c.ListCertificates(context.Background(), "EXPIRED")
	require.NoError(t, err)
	require.Len(t, exp, 1)
	require.Equal(t, "expired.example.com", exp[0].Name)
}

func TestClientListFailsWhenAPageFails(t *testing.T) {
	ch := newClientHarness(t, V11, func(o *emulator.Options) { o.MaxPageSize = 10 })
	require.NoError(t, ch.emu.Seed("bulk", 50))
	// NHN refuses the list: the error says why, and no partial list comes back.
	ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultResult, Target: "list", ResultCode: 52006})
	_, err := ch.c.ListCertificates(context.Background(), "ALL")
	ch.requireClean(err)
	require.Contains(t, err.Error(), "resultCode 52006")
}

func TestMergePages(t *testing.T) {
	merged := MergePages([][]Certificate{
		{{Name: "b.example.com"}, {Name: "a.example.com"}},
		{{Name: "b.example.com"}, {Name: "bad/name"}, {Name: "*.example.com"}, {Name: "웹 서버"}, {Name: ".."}, {Name: "bad/name"}},
		nil,
	})
	var names []string
	for _, c := range merged {
		names = append(names, c.Name)
	}
	require.Equal(t, []string{"*.example.com", "..", "a.example.com", "b.example.com", "bad/name", "웹 서버"}, names, "sorted, each once; the engine checks the names")
}

func TestParseRetryAfter(t *testing.T) {
	require.Equal(t, 3*time.Second, parseRetryAfter("3"))
	require.Equal(t, maxRetryWait, parseRetryAfter("3600"))
	require.Zero(t, parseRetryAfter(""))
	require.Zero(t, parseRetryAfter("-5"))
	require.Zero(t, parseRetryAfter("soon"))
	d := parseRetryAfter(time.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat))
	require.InDelta(t, 5, d.Seconds(), 1.5)
}

// TestClientOneAttempt: a context marked WithOneAttempt tries NHN once,
// and says it is unreachable as after every attempt.
func TestClientOneAttempt(t *testing.T) {
	ch := newClientHarness(t, V11)
	ch.put("example.com")
	ch.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown, Target: "files"})
	_, err := ch.c.DownloadFile(WithOneAttempt(context.Background()), "example.com")
	var ue *Error
	require.True(t, errors.As(err, &ue))
	require.True(t, ue.Unreachable)
	require.EqualValues(t, 1, ch.emu.Stats().FileCalls)
	require.Empty(t, ch.waits)
	require.Equal(t, MaxAttempts, attemptsFor(context.Background()))
}

// TestListAnswerCertificateID: certificateId as NHN's guide shows it (a
// number), as a numeric string, or absent; a page decodes the same either
// way.
func TestListAnswerCertificateID(t *testing.T) {
	page := func(item string) []byte {
		return []byte(`{"header":{"resultCode":0,"resultMessage":"SUCCESS","isSuccessful":true},"body":{"totalCount":1,"totalPage":1,"currentPage":1,"pageSize":10,"data":[` + item + `]}}`)
	}
	for item, want := range map[string]int64{
		`{"certificateId":1,"certificateName":"nhncloudservice.com","authority":"NHN","domains":["nhncloudservice.com"],"signatureAlgorithm":"SHA256withRSA","fileCreationDate":"2025-03-02","expirationDate":"2026-03-25"}`: 1,
		`{"certificateId":"42","certificateName":"a"}`: 42,
		`{"certificateName":"a"}`:                      0,
		`{"certificateId":null,"certificateName":"a"}`: 0,
	} {
		a, err := decodeListPage("listing", page(item))
		require.NoError(t, err, item)
		id, ok := a.Body.Data[0].CertificateID()
		require.Equal(t, want != 0, ok, item)
		require.Equal(t, want, id, item)
	}
}
