package nhncert

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
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
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
	"github.com/stretchr/testify/require"
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

// The bundle fixture and PEM helpers of the parser, render and fuzz tests.

// bundleFixture holds certificates shared by the bundle tests, made once:
// key generation (RSA above all) is the expensive part.
type bundleFixture struct {
	ca     *emulator.CA // one intermediate
	other  *emulator.CA // one intermediate, same subject names, other keys
	chains map[emulator.KeyType]*emulator.Chain
}

var (
	bundleFixtureOnce sync.Once
	bundleFixtureVal  *bundleFixture
	bundleFixtureErr  error
)

func loadBundleFixture(t testing.TB) *bundleFixture {
	t.Helper()
	bundleFixtureOnce.Do(func() { bundleFixtureVal, bundleFixtureErr = makeBundleFixture() })
	if bundleFixtureErr != nil {
		t.Fatalf("making test certificates: %v", bundleFixtureErr)
	}
	return bundleFixtureVal
}

func makeBundleFixture() (*bundleFixture, error) {
	ca, err := emulator.NewCA(1)
	if err != nil {
		return nil, err
	}
	other, err := emulator.NewCA(1)
	if err != nil {
		return nil, err
	}
	fx := &bundleFixture{ca: ca, other: other, chains: map[emulator.KeyType]*emulator.Chain{}}
	// One RSA and one EC key each serve two encodings (PKCS#1 or SEC1, and
	// PKCS#8) so that only one RSA key is generated.
	for _, kt := range []emulator.KeyType{emulator.RSA, emulator.EC, emulator.Ed25519} {
		c, err := emulator.GenerateChain(emulator.ChainOptions{
			CommonName: string(kt) + ".example.com",
			DNSNames:   []string{string(kt) + ".example.com", "www." + string(kt) + ".example.com"},
			KeyType:    kt,
			CA:         ca,
		})
		if err != nil {
			return nil, err
		}
		fx.chains[kt] = c
	}
	for kt, from := range map[emulator.KeyType]emulator.KeyType{emulator.RSAPKCS8: emulator.RSA, emulator.ECPKCS8: emulator.EC} {
		c, err := reencodeKey(fx.chains[from], kt)
		if err != nil {
			return nil, err
		}
		fx.chains[kt] = c
	}
	return fx, nil
}

// reencodeKey returns a copy of c with its key written as kt.
func reencodeKey(c *emulator.Chain, kt emulator.KeyType) (*emulator.Chain, error) {
	p, err := emulator.EncodeKey(kt, c.Key)
	if err != nil {
		return nil, err
	}
	cp := *c
	cp.KeyPEM, cp.KeyType = p, kt
	return &cp, nil
}

// allKeyPEMs is every private key of the fixture, for leak checks.
func (fx *bundleFixture) allKeyPEMs() [][]byte {
	var out [][]byte
	for _, c := range fx.chains {
		out = append(out, c.KeyPEM)
	}
	return out
}

// joinPEM concatenates PEM parts, each ending in a newline.
func joinPEM(parts ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		b.Write(p)
		if len(p) > 0 && p[len(p)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func firstBlock(t testing.TB, p []byte) *pem.Block {
	t.Helper()
	b, _ := pem.Decode(p)
	require.NotNil(t, b, "no PEM block")
	return b
}

// requireNoKeyMaterial fails when msg holds a line of any key's base64, or
// a 16-byte run of its DER in hex.
func requireNoKeyMaterial(t testing.TB, msg string, keyPEMs ...[]byte) {
	t.Helper()
	for _, kp := range keyPEMs {
		for _, line := range strings.Split(string(kp), "\n") {
			line = strings.TrimSpace(line)
			if len(line) < 16 || strings.HasPrefix(line, "-----") || strings.Contains(line, ":") {
				continue
			}
			require.NotContains(t, msg, line, "error text holds key material")
		}
		blocks, _ := testkit.PEMBlocks(kp)
		for _, b := range blocks {
			for i := 0; i+16 <= len(b.Bytes); i += 8 {
				w := b.Bytes[i : i+16]
				require.NotContains(t, strings.ToLower(msg), hex.EncodeToString(w), "error text holds key material (hex)")
				require.NotContains(t, msg, string(w), "error text holds key material (raw)")
			}
		}
	}
}

func describeChain(chain []*x509.Certificate) string {
	var names []string
	for _, c := range chain {
		names = append(names, c.Subject.CommonName)
	}
	return strings.Join(names, ", then ")
}

func requireChain(t testing.TB, want, got []*x509.Certificate, msgAndArgs ...any) {
	t.Helper()
	require.Len(t, got, len(want), msgAndArgs...)
	for i := range want {
		require.True(t, want[i].Equal(got[i]), append([]any{"chain[%d] is %q, want %q", i, got[i].Subject.String(), want[i].Subject.String()}, msgAndArgs...)...)
	}
}

var keyTypeWant = map[emulator.KeyType]string{
	emulator.RSA:      "rsa",
	emulator.RSAPKCS8: "rsa",
	emulator.EC:       "ec",
	emulator.ECPKCS8:  "ec",
	emulator.Ed25519:  "ed25519",
}

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
