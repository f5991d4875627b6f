package nhncert

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/testhelpers/schema"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/pause"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// The scaffolding every test of this package shares. Helpers shared with
// other packages' tests are in internal/testkit.

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
	// srv records every request the emulator received.
	srv    *testkit.Recorder
	logs   *testkit.SyncBuffer
	events *recordingEvents
	// start is the clock of every backend of the harness (b.now).
	start time.Time
}

func newHarness(t testing.TB, opts ...func(*emulator.Options)) *harness {
	t.Helper()
	eo := emulator.Options{AppKey: testAppKey, AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	for _, o := range opts {
		o(&eo)
	}
	h := &harness{t: t, emu: emulator.New(eo), storage: &sealRecordingStorage{Storage: &logical.InmemStorage{}}, logs: &testkit.SyncBuffer{}, events: &recordingEvents{}, start: time.Now()}
	h.srv = testkit.NewRecorder(t, h.emu)
	h.b = h.newBackend(h.storage)
	return h
}

// configuredHarness is newHarness with the mount configured against its
// emulator (extra over the test defaults; see configure).
func configuredHarness(t testing.TB, extra map[string]any, opts ...func(*emulator.Options)) *harness {
	t.Helper()
	h := newHarness(t, opts...)
	h.configure(extra)
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
	// One instant and no jitter, so that two reads of one copy answer the
	// same ttl; tests that need another clock or jitter set their own.
	t.now = func() time.Time { return h.start }
	t.jitter = func() float64 { return 0 }
	// Retries wait no time in unit tests; backoff itself is tested apart
	// (nhn).
	t.newClient = noWaitClient
	// No pauses but those a test makes (withPauses): a loaded test
	// machine that starves the process for a second must not turn reads
	// on storage that refuses writes into 503s.
	t.resumed = pause.New(pause.Threshold, func() time.Duration { return 0 }).NewGate()
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

// noRetryWait builds the current session now; its client, as every client
// of a harness backend, retries without sleeping (noWaitClient).
func (h *harness) noRetryWait() {
	_, err := h.b.session(context.Background(), h.storage)
	require.NoError(h.t, err)
}

// noWait is a wait between attempts that takes no time.
func noWait(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// noWaitClient is an NHN client whose retries wait no time.
func noWaitClient(cfg nhn.Config) nhnClient {
	cfg.Sleep = noWait
	return nhn.New(cfg)
}

func (h *harness) request(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return h.requestOn(h.b, h.storage, op, path, data)
}

// requestOn sends a request to b. Every successful answer is checked,
// strictly, against the response schema its path declares (as the KV
// engine's tests do), so that a handler cannot drift from its OpenAPI.
func (h *harness) requestOn(b *backend, s logical.Storage, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	resp, err := b.HandleRequest(context.Background(), &logical.Request{
		Operation:  op,
		Path:       path,
		Data:       data,
		Storage:    s,
		MountPoint: "nhncert/",
	})
	notFound := resp == nil && op == logical.ReadOperation // Vault answers 404
	if t, ok := h.t.(*testing.T); ok && err == nil && op != logical.HelpOperation && !notFound && (resp == nil || !resp.IsError()) {
		schema.ValidateResponse(t, schema.GetResponseSchema(t, b.Route(path), op), resp, true)
		if resp == nil {
			return resp, err
		}
		if info, ok := resp.Data["key_info"].(map[string]any); ok && op == logical.ListOperation {
			for name, entry := range info {
				require.IsType(t, map[string]any{}, entry, name)
				schema.ValidateResponseData(t, &framework.Response{Fields: keyInfoFields}, entry.(map[string]any), true)
			}
		}
	}
	return resp, err
}

// read reads certs/<name> and requires success.
func (h *harness) read(name string, data map[string]any) *logical.Response {
	h.t.Helper()
	return h.mustRead("certs/"+name, data)
}

// mustRead reads path and requires success.
func (h *harness) mustRead(path string, data map[string]any) *logical.Response {
	h.t.Helper()
	resp, err := h.request(logical.ReadOperation, path, data)
	require.NoError(h.t, err)
	require.NotNil(h.t, resp)
	require.False(h.t, resp.IsError(), "read %s: %v", path, resp.Error())
	return resp
}

// cached registers a certificate under name (default chain and file) and
// reads it once, so that the engine holds it.
func (h *harness) cached(name string) {
	h.t.Helper()
	h.putChain(name, emulator.ChainOptions{}, emulator.FileOptions{})
	h.read(name, nil)
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
	for _, r := range h.srv.Requests() {
		if v := r.Header.Get("X-NHN-AUTHORIZATION"); v != "" {
			tok := strings.TrimPrefix(v, "Bearer ")
			require.NotContains(h.t, s, tok, "%s holds a bearer token", what)
		}
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

// readPath reads any path and requires success.
func (h *harness) readPath(path string, data map[string]any) *logical.Response {
	h.t.Helper()
	resp, err := h.request(logical.ReadOperation, path, data)
	require.NoError(h.t, err)
	require.NotNil(h.t, resp)
	require.False(h.t, resp.IsError(), "%s: %v", path, resp.Error())
	return resp
}

// expireCache ages name's cache entry past any cache_ttl.
func expireCache(h *harness, name string) {
	h.t.Helper()
	st := mustSession(h)
	e := h.b.cache.get(name, st.cfg.Generation)
	require.NotNil(h.t, e)
	old, err := newEntry(name, e.generation, e.file, time.Now().Add(-24*time.Hour), passphraseOf(context.Background(), h.storage, name))
	require.NoError(h.t, err)
	h.b.cache.putMemory(old)
	require.NoError(h.t, h.b.cache.store(context.Background(), h.storage, old))
}

func mustSession(h *harness) *session {
	h.t.Helper()
	st, err := h.b.session(context.Background(), h.storage)
	require.NoError(h.t, err)
	require.NotNil(h.t, st)
	return st
}

type readOnlyStorage struct {
	logical.Storage
	mu      sync.Mutex
	refused int
}

func (r *readOnlyStorage) Put(context.Context, *logical.StorageEntry) error {
	r.mu.Lock()
	r.refused++
	r.mu.Unlock()
	return logical.ErrReadOnly
}

func (r *readOnlyStorage) Delete(context.Context, string) error { return logical.ErrReadOnly }

// withoutCopyTiming is a read's data without the fields that describe the
// served copy's age (rotation.go), for comparing the certificate two reads
// served when one of them was served from an aged or stale copy.
func withoutCopyTiming(d map[string]any) map[string]any {
	out := maps.Clone(d)
	delete(out, "ttl")
	delete(out, "last_vault_rotation")
	return out
}

// seedRead puts n generated certificates into the emulator
// (bulk00000.example.com, ...), reads each once and returns their names.
func (h *harness) seedRead(n int) []string {
	h.t.Helper()
	require.NoError(h.t, h.emu.Seed("bulk", n))
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bulk%05d.example.com", i)
		h.read(names[i], nil)
	}
	return names
}
