package nhncert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

const (
	testAppKey = "test-app-key"
	testKeyID  = "test-access-key-id"
	testSecret = "test-secret-access-key-do-not-leak"
)

// harness is a backend on in-memory storage talking to an NHN emulator
// over loopback HTTP.
type harness struct {
	t       testing.TB
	b       *backend
	storage logical.Storage
	emu     *emulator.Server
	srv     *httptest.Server
	logs    *syncBuffer
	events  *recordingEvents

	mu       sync.Mutex
	requests []*http.Request // every request the emulator received
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t testing.TB, opts ...func(*emulator.Options)) *harness {
	t.Helper()
	eo := emulator.Options{AppKey: testAppKey, AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	for _, o := range opts {
		o(&eo)
	}
	h := &harness{t: t, emu: emulator.New(eo), storage: &sealRecordingStorage{Storage: &logical.InmemStorage{}}, logs: &syncBuffer{}, events: &recordingEvents{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.requests = append(h.requests, r.Clone(context.Background()))
		h.mu.Unlock()
		h.emu.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	h.b = h.newBackend(h.storage)
	return h
}

// newBackend starts another backend (a restarted Vault, another node) on
// the given storage, logging at trace level into h.logs.
func (h *harness) newBackend(s logical.Storage) *backend {
	h.t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	sys := logical.TestSystemView()
	sys.PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "1.21.0"}
	conf.System = sys
	conf.EventsSender = h.events
	conf.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: h.logs})
	b, err := Factory(context.Background(), conf)
	require.NoError(h.t, err)
	t := b.(*backend)
	// Retries wait no time in unit tests; backoff itself is tested apart.
	h.t.Cleanup(func() { t.clean(context.Background()) })
	return t
}

// configure writes a config pointing at the emulator, plus extra fields.
func (h *harness) configure(extra map[string]any) {
	h.t.Helper()
	data := map[string]any{
		"app_key":           testAppKey,
		"access_key_id":     testKeyID,
		"secret_access_key": testSecret,
		"endpoint":          h.srv.URL,
		"auth_endpoint":     h.srv.URL,
		"request_timeout":   "10s",
	}
	for k, v := range extra {
		data[k] = v
	}
	resp, err := h.request(logical.UpdateOperation, "config", data)
	require.NoError(h.t, err)
	require.False(h.t, resp != nil && resp.IsError(), "config write: %v", resp)
	h.noRetryWait()
}

// noRetryWait makes the current client retry without sleeping.
func (h *harness) noRetryWait() {
	st, err := h.b.session(context.Background(), h.storage)
	require.NoError(h.t, err)
	if st != nil {
		st.client.(*client).sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	}
}

func (h *harness) request(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return h.requestOn(h.b, h.storage, op, path, data)
}

func (h *harness) requestOn(b *backend, s logical.Storage, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return b.HandleRequest(context.Background(), &logical.Request{
		Operation:  op,
		Path:       path,
		Data:       data,
		Storage:    s,
		MountPoint: "nhncert/",
	})
}

// read reads certs/<name> and requires success.
func (h *harness) read(name string, data map[string]any) *logical.Response {
	h.t.Helper()
	resp, err := h.request(logical.ReadOperation, "certs/"+name, data)
	require.NoError(h.t, err)
	require.NotNil(h.t, resp)
	require.False(h.t, resp.IsError(), "read %s: %v", name, resp.Error())
	return resp
}

// putChain generates a certificate and registers it in the emulator.
func (h *harness) putChain(name string, o emulator.ChainOptions, fo emulator.FileOptions) *emulator.Chain {
	h.t.Helper()
	if o.CommonName == "" {
		o.CommonName = name
	}
	ch, err := emulator.GenerateChain(o)
	require.NoError(h.t, err)
	h.emu.PutChain(name, ch, fo)
	return ch
}

func (h *harness) fileCalls(name string) int64 {
	return h.emu.Stats().FileCallsByName[name]
}

func (h *harness) cacheKeys() []string {
	keys, err := h.storage.List(context.Background(), cacheStoragePrefix)
	require.NoError(h.t, err)
	return keys
}

// requireNoSecrets fails when s holds the secret key or a bearer token.
func (h *harness) requireNoSecrets(what, s string) {
	h.t.Helper()
	require.NotContains(h.t, s, testSecret, "%s holds the secret access key", what)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.requests {
		if v := r.Header.Get("X-NHN-AUTHORIZATION"); v != "" {
			tok := strings.TrimPrefix(v, "Bearer ")
			require.NotContains(h.t, s, tok, "%s holds a bearer token", what)
		}
	}
}

func TestFactoryReportsVersionAndSealWrap(t *testing.T) {
	h := newHarness(t)
	require.Equal(t, Version, h.b.PluginVersion().Version)
	require.ElementsMatch(t, []string{"config", "cache/"}, h.b.SpecialPaths().SealWrapStorage)
	require.Equal(t, logical.TypeLogical, h.b.Type())
}

func TestUnconfiguredMountAnswersClearly(t *testing.T) {
	h := newHarness(t)
	for _, op := range []struct {
		op   logical.Operation
		path string
	}{{logical.ReadOperation, "certs/example.com"}, {logical.ListOperation, "certs/"}} {
		resp, err := h.request(op.op, op.path, nil)
		require.NoError(t, err)
		require.True(t, resp.IsError())
		require.Contains(t, resp.Error().Error(), "not configured")
	}
	resp, err := h.request(logical.ReadOperation, "config", nil)
	require.NoError(t, err)
	require.Nil(t, resp, "reading an absent config is a 404")
}

func TestHelpAndOpenAPI(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"config", "certs/", "certs/example.com"} {
		resp, err := h.request(logical.HelpOperation, p, nil)
		require.NoError(t, err, p)
		help := resp.Data["help"].(string)
		require.Greater(t, len(help), 200, "help for %s is too short: %q", p, help)
	}
	resp, err := h.request(logical.HelpOperation, "", nil)
	require.NoError(t, err)
	doc := resp.Data["openapi"]
	require.NotNil(t, doc)
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(doc))
	for _, op := range []string{"nhncert-read-certificate", "nhncert-list-certificates", "nhncert-configure", "nhncert-read-configuration", "nhncert-delete-configuration"} {
		require.Contains(t, buf.String(), op)
	}
}

func stringify(v any) string { return fmt.Sprintf("%#v", v) }

// sealRecordingStorage remembers whether each key was last written
// seal-wrapped; InmemStorage does not return the flag.
type sealRecordingStorage struct {
	logical.Storage
	sealWrapped sync.Map
}

func (s *sealRecordingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.sealWrapped.Store(e.Key, e.SealWrap)
	return s.Storage.Put(ctx, e)
}

// requireSealWrapped fails unless key was last written seal-wrapped.
func (h *harness) requireSealWrapped(key string) {
	h.t.Helper()
	v, ok := h.storage.(*sealRecordingStorage).sealWrapped.Load(key)
	require.True(h.t, ok, "%s was never written", key)
	require.True(h.t, v.(bool), "%s must be seal-wrapped", key)
}

// recordingEvents is a logical.EventSender that keeps what it was sent.
type recordingEvents struct {
	mu     sync.Mutex
	events []sentEvent
}

type sentEvent struct {
	Type     string
	Metadata map[string]any
}

func (r *recordingEvents) SendEvent(_ context.Context, typ logical.EventType, ev *logical.EventData) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, sentEvent{Type: string(typ), Metadata: ev.Metadata.AsMap()})
	return nil
}

func (r *recordingEvents) sent() []sentEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sentEvent(nil), r.events...)
}
