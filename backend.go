// Package nhncert is a Vault secrets engine that serves the TLS certificates
// and private keys kept in NHN Cloud Certificate Manager.
package nhncert

// What runs where, for an HA or replicated cluster:
//
//   - Standby nodes forward every request to the active node, which answers
//     from its memory or from storage; one download serves the cluster.
//   - Performance standbys (Enterprise) answer reads themselves from
//     replicated storage, which is read-only for them: a certificate the
//     active node has not cached is downloaded and kept in the standby's
//     memory only (the refused storage write is not an error), and
//     Invalidate drops that copy when the active node stores one. Config
//     writes and deletes carry ForwardPerformanceStandby.
//   - The background refresh (refresh.go) runs only where InitializeFunc is
//     called (the active node of the primary cluster, and local mounts of a
//     performance secondary) and only while WriteSafeReplicationState holds.
//   - Invalidate reaches every other node when this mount's storage
//     changes: "config" resets the session, "cache/<hash>" drops that one
//     certificate from memory, "passphrase/<hash>" that certificate's
//     refusals and memory-only copy. Passphrase writes and deletes carry
//     ForwardPerformanceStandby.

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/pause"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// Version is the plugin's version, set at build time with
// -ldflags "-X github.com/nhncert/vault-plugin-secrets-nhncert.Version=v1.2.3".
var Version = "v0.1.0-dev"

const operationPrefix = "nhncert"

// answers is an operation that answers 200 with fields: its callback, and
// how OpenAPI names it (verb, suffix). The tests check every answer
// against these fields.
func answers(cb framework.OperationFunc, verb, suffix string, fields map[string]*framework.FieldSchema) *framework.PathOperation {
	return &framework.PathOperation{
		Callback:     cb,
		DisplayAttrs: &framework.DisplayAttributes{OperationVerb: verb, OperationSuffix: suffix},
		Responses: map[int][]framework.Response{
			http.StatusOK: {{Description: "OK", Fields: fields}},
		},
	}
}

// changes is an operation that writes or deletes: forwarded from a
// performance standby to the active node, answering as responses says.
func changes(cb framework.OperationFunc, verb, suffix string, responses map[int][]framework.Response) *framework.PathOperation {
	return forwarded(&framework.PathOperation{
		Callback:     cb,
		DisplayAttrs: &framework.DisplayAttributes{OperationVerb: verb, OperationSuffix: suffix},
		Responses:    responses,
	})
}

// forwarded is op forwarded from a performance standby to the active node.
func forwarded(op *framework.PathOperation) *framework.PathOperation {
	op.ForwardPerformanceStandby = true
	return op
}

func userAgent() string { return "vault-plugin-secrets-nhncert/" + Version }

// backend is one mount of the engine.
type backend struct {
	*framework.Backend

	// configMu serialises config writes and deletes, and building the
	// session from storage, so that a reader never installs a config that
	// a concurrent write has replaced.
	configMu sync.Mutex
	// current is the session in use; nil until first needed and after the
	// config changes. Reads load it without locking.
	current atomic.Pointer[session]

	cache     *certCache
	catalog   catalog
	refresher refresher
	// now is the clock of what is computed from dates (expires_in_days);
	// tests pin it.
	now func() time.Time
	// jitter returns a random number in [0, 1); it spreads the background
	// refresh and the ttl of a read. Tests pin it.
	jitter func() float64
	// newClient, when set, builds the NHN client of each new session in
	// place of nhn.New (tests: retries that wait no time, counted requests).
	newClient func(nhn.Config) nhnClient
	// mountPath is where Vault mounted this backend ("nhncert/"), learnt
	// from requests, for the paths in events (events.go).
	mountPath atomic.Pointer[string]
	// metrics is this mount's registry (metrics.go): one per backend, the
	// plugin process serving many mounts.
	metrics *mountMetrics
	// hosts is the state of hosts/<hostname> (hosts.go).
	hosts hostsState
	// resumed is clear while the process ran without a pause since this
	// node last confirmed it is the active one (resume_check.go).
	resumed *pause.Gate
}

// session is a config and the NHN client built from it. It is replaced as
// a whole when the config changes, so a request works with one consistent
// pair from start to end.
type session struct {
	cfg    *nhnConfig
	client nhnClient
}

// nhnClient is all the engine asks of NHN Cloud Certificate Manager. The
// nhn package's Client is the one implementation; the protocol detail
// (tokens, retries, pages, error answers) stays behind it.
type nhnClient interface {
	// ListCertificates returns every certificate with the given status
	// (ALL, EXPIRED or UNEXPIRED), across all pages, sorted by name, each
	// name once; the engine leaves out the names it cannot serve
	// (servable).
	ListCertificates(ctx context.Context, status string) ([]certInfo, error)
	// DownloadFile returns the certificate file of name.
	DownloadFile(ctx context.Context, name string) ([]byte, error)
	// Close releases idle connections; the session that owns the client
	// is being replaced.
	Close()
	// TokenExpiresAt is when the v1.3 token held expires; zero when none
	// is held (or v1.1, which has no token). For status: never the token.
	TokenExpiresAt() time.Time
}

var _ nhnClient = (*nhn.Client)(nil)

// Factory returns a configured backend, as Vault asks of a plugin.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	b.cache.logger = b.Logger().Named("cache")
	return b, nil
}

func newBackend() *backend {
	b := &backend{cache: newCertCache(maxMemoryEntries), now: time.Now, jitter: rand.Float64}
	b.refresher.wake = make(chan struct{}, 1)
	b.hosts.memo = newHostMemo()
	b.resumed = pause.Default().NewGate()
	b.metrics = newMountMetrics(Version, func() float64 { return float64(b.refresher.panics.Load()) })
	b.cache.hooks = b
	b.cache.jitter = func() float64 { return b.jitter() }
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			// The config holds the secret key; the cache holds private
			// keys; the passphrases open encrypted ones.
			SealWrapStorage: []string{configPath, cacheStoragePrefix, passphraseStoragePrefix},
		},
		Paths: []*framework.Path{
			pathConfig(b),
			pathCertsList(b),
			pathCerts(b),
			pathHosts(b),
			pathMetadata(b),
			pathStatus(b),
			pathMetrics(b),
			pathPassphrasesList(b),
			pathPassphrases(b),
		},
		InitializeFunc: b.initialize,
		Invalidate:     b.invalidate,
		Clean:          b.clean,
		RunningVersion: Version,
	}
	return b
}

// The backend is the cache's view of the rest of the engine.
var _ cacheHooks = (*backend)(nil)

func (b *backend) listInfo(generation, name string) *certInfo {
	return b.catalog.lookup(generation, name)
}

// recordList keeps what a list of NHN with status filter status ("all",
// "unexpired" or "expired") said, for the live generation only.
func (b *backend) recordList(generation string, infos []certInfo, status string) {
	if !b.cache.gate.admit(generation) {
		return
	}
	defer b.cache.gate.release()
	b.catalog.record(generation, infos, status, b.now().UTC().Format(time.DateOnly))
}

// invalidate is called on other nodes (standbys, performance standbys) when
// a key this mount wrote changes.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configPath:
		b.configMu.Lock()
		// The new config may name another upstream: what this node has
		// in flight under the old one is dropped (the next session makes
		// its generation live again when it is the same).
		b.cache.gate.retire()
		b.reset()
		b.configMu.Unlock()
	case strings.HasPrefix(key, cacheStoragePrefix):
		b.cache.forgetKey(key)
	case strings.HasPrefix(key, passphraseStoragePrefix):
		b.cache.forgetPassphraseKey(key)
	}
}

// passphrasePath is where name's passphrase is written, under the mount
// path requests came in on.
func (b *backend) passphrasePath(name string) string {
	mount := b.eventMountPath()
	if mount == "" {
		mount = "<mount>/"
	}
	return mount + "passphrases/" + name
}

// clean is Vault's Cleanup (unmount, reload, shutdown): the refresh stops,
// downloads in flight are cancelled and waited for (up to cleanupWait), and
// nothing is written after it returns.
func (b *backend) clean(context.Context) {
	b.stopRefresher()
	b.cache.gate.close()
	b.configMu.Lock()
	b.reset()
	b.configMu.Unlock()
}

// reset drops the session, the in-memory cache and the catalog; the next
// request rebuilds them from storage. The caller holds configMu.
func (b *backend) reset() { b.resetKeeping(false) }

// resetKeeping is reset that, with failures set, keeps what the engine
// knows of NHN's failures (retry windows, refused files): a config write
// that keeps the identity (a new cache_ttl during an outage, say) must
// not send every read to the failing NHN at once. Both are keyed by the
// config generation, which such a write keeps.
func (b *backend) resetKeeping(failures bool) {
	if old := b.current.Swap(nil); old != nil {
		old.client.Close()
	}
	if failures {
		b.cache.memory.Purge()
	} else {
		b.cache.clearMemory()
	}
	b.catalog.clear()
	b.wakeRefresher()
}

// session returns the config and client in use, or nil when the mount has
// no config; after a pause of the process, once the node confirmed it is
// still the active one (errLostLeadership otherwise: resume_check.go).
func (b *backend) session(ctx context.Context, s logical.Storage) (*session, error) {
	if err := b.confirmActive(ctx, s); err != nil {
		return nil, requestError(err)
	}
	return b.loadSession(ctx, s)
}

// loadSession is session without the check after a pause: the background
// refresh makes its own (the claim).
func (b *backend) loadSession(ctx context.Context, s logical.Storage) (*session, error) {
	if sess := b.current.Load(); sess != nil {
		return sess, nil
	}
	b.configMu.Lock()
	defer b.configMu.Unlock()
	if sess := b.current.Load(); sess != nil {
		return sess, nil
	}
	cfg, err := readConfig(ctx, s)
	if err != nil || cfg == nil {
		return nil, err
	}
	ccfg := cfg.clientConfig()
	ccfg.Logger = b.Logger().Named("nhn")
	ccfg.Observer = b.metrics
	var c nhnClient
	if b.newClient != nil {
		c = b.newClient(ccfg)
	} else {
		c = nhn.New(ccfg)
	}
	sess := &session{cfg: cfg, client: c}
	b.cache.gate.setLive(cfg.Generation)
	b.current.Store(sess)
	return sess, nil
}

// errNotConfigured is the answer to a request that needs the config before
// it was written.
func errNotConfigured() (*logical.Response, error) {
	return logical.ErrorResponse("the nhncert engine is not configured: write its config first (vault write <mount>/config app_key=... access_key_id=... secret_access_key=...)"), nil
}

const backendHelp = `
The nhncert secrets engine serves the TLS certificates and private keys kept
in NHN Cloud Certificate Manager, so that servers read them under a Vault
policy and never hold NHN credentials.

Write the NHN project's app key and a User Access Key to "config", then
"list certs/" to see the certificates and "read certs/<name>" to get one,
split into certificate, issuing_ca, ca_chain and private_key the way the PKI
engine names them. Downloads are cached in Vault's storage for cache_ttl.
`
