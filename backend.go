// Package nhncert is a Vault secrets engine that serves the TLS certificates
// and private keys kept in NHN Cloud Certificate Manager.
package nhncert

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Version is the plugin's version, set at build time with
// -ldflags "-X github.com/nhncert/vault-plugin-secrets-nhncert.Version=v1.2.3".
var Version = "v0.1.0-dev"

const operationPrefix = "nhncert"

func userAgent() string { return "vault-plugin-secrets-nhncert/" + Version }

// backend is one mount of the engine.
type backend struct {
	*framework.Backend

	// configMu serialises config writes and deletes, and building state
	// from storage, so that a reader never installs a config that a
	// concurrent write has replaced.
	configMu sync.Mutex
	// state is the config and client in use; nil until first needed and
	// after the config changes. Reads load it without locking.
	state atomic.Pointer[mountState]

	cache     *certCache
	listed    listedStore
	refresher refresher
	// mount is where Vault mounted this backend ("nhncert/"), learnt from
	// requests, for the paths in events.
	mountPath atomic.Pointer[string]
}

// mountState is a config and the client built from it.
type mountState struct {
	cfg    *nhnConfig
	client *client
}

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
	b := &backend{cache: newCertCache(maxMemoryEntries)}
	b.refresher.wake = make(chan struct{}, 1)
	b.cache.listed = b.listed.get
	b.cache.changed = b.sendCertEvent
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			// The config holds the secret key; the cache holds private keys.
			SealWrapStorage: []string{configPath, cacheStoragePrefix},
		},
		Paths: []*framework.Path{
			pathConfig(b),
			pathCertsList(b),
			pathCerts(b),
			pathMetadata(b),
		},
		InitializeFunc: b.initialize,
		Invalidate:     b.invalidate,
		Clean:          b.clean,
		RunningVersion: Version,
	}
	return b
}

// invalidate is called on other nodes (standbys, performance standbys) when
// a key this mount wrote changes.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configPath:
		b.configMu.Lock()
		b.reset()
		b.configMu.Unlock()
	case strings.HasPrefix(key, cacheStoragePrefix):
		b.cache.forgetKey(key)
	}
}

func (b *backend) clean(context.Context) {
	b.stopRefresher()
	b.configMu.Lock()
	b.reset()
	b.configMu.Unlock()
}

// reset drops the config, the client and the in-memory cache; the next
// request rebuilds them from storage. The caller holds configMu.
func (b *backend) reset() {
	if old := b.state.Swap(nil); old != nil {
		old.client.close()
	}
	b.cache.clearMemory()
	b.listed.clear()
	b.wakeRefresher()
}

// noteMount remembers the mount path a request came in on.
func (b *backend) noteMount(req *logical.Request) {
	if p := b.mountPath.Load(); p == nil || *p != req.MountPoint {
		mp := req.MountPoint
		b.mountPath.Store(&mp)
	}
}

func (b *backend) mountPoint() string {
	if p := b.mountPath.Load(); p != nil {
		return *p
	}
	return ""
}

// mount returns the config and client in use, or nil when the mount has no
// config.
func (b *backend) mount(ctx context.Context, s logical.Storage) (*mountState, error) {
	if st := b.state.Load(); st != nil {
		return st, nil
	}
	b.configMu.Lock()
	defer b.configMu.Unlock()
	if st := b.state.Load(); st != nil {
		return st, nil
	}
	cfg, err := readConfig(ctx, s)
	if err != nil || cfg == nil {
		return nil, err
	}
	st := &mountState{cfg: cfg, client: newClient(cfg.clientConfig(), b.Logger().Named("nhn"))}
	b.state.Store(st)
	return st, nil
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
