package nhncert

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

func pathConfig(b *backend) *framework.Path {
	fields := configFields()
	// A read shows every field but the secret.
	readFields := maps.Clone(fields)
	delete(readFields, "secret_access_key")
	written := map[int][]framework.Response{
		http.StatusNoContent: {{Description: "Written; a 200 with warnings when a value is allowed but unwise."}},
	}
	return &framework.Path{
		Pattern: configPath,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Fields:         fields,
		ExistenceCheck: b.pathConfigExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation:   answers(b.pathConfigRead, "read", "configuration", readFields),
			logical.CreateOperation: changes(b.pathConfigWrite, "configure", "", written),
			logical.UpdateOperation: changes(b.pathConfigWrite, "configure", "", written),
			logical.DeleteOperation: changes(b.pathConfigDelete, "delete", "configuration", map[int][]framework.Response{
				http.StatusNoContent: {{Description: "Deleted, with every cached certificate."}},
			}),
		},
		HelpSynopsis:    pathConfigHelpSyn,
		HelpDescription: pathConfigHelpDesc,
	}
}

// configFields are the config's fields, as written and (but for the
// secret) as read.
func configFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"app_key": {
			Type:        framework.TypeString,
			Description: "App key of the NHN Cloud project that holds the certificates.",
			Required:    true,
		},
		"access_key_id": {
			Type:        framework.TypeString,
			Description: "User Access Key ID.",
			Required:    true,
		},
		"secret_access_key": {
			Type:         framework.TypeString,
			Description:  "Secret Access Key. Required on the first write; never returned.",
			DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
		},
		"region": {
			Type:          framework.TypeLowerCaseString,
			Description:   `"public" or "gov"; picks the default endpoints and API version.`,
			Default:       regionPublic,
			AllowedValues: []any{regionPublic, regionGov},
		},
		"api_version": {
			Type:          framework.TypeLowerCaseString,
			Description:   `"v1.3" (User Access Key token) or "v1.1" (key headers). Default: v1.3 for public, v1.1 for gov.`,
			AllowedValues: []any{nhn.V13, nhn.V11},
		},
		"endpoint": {
			Type:        framework.TypeString,
			Description: "Certificate Manager base URL. Default: the region's. Set it for private endpoints and tests.",
		},
		"auth_endpoint": {
			Type:        framework.TypeString,
			Description: "Token service base URL, used by v1.3. Default: the region's.",
		},
		"cache_ttl": {
			Type:        framework.TypeDurationSecond,
			Description: "How long a downloaded certificate is served before it is fetched again.",
			Default:     int(defaultCacheTTL.Seconds()),
		},
		"request_timeout": {
			Type:        framework.TypeDurationSecond,
			Description: "Bound on one upstream call.",
			Default:     int(defaultRequestTimeout.Seconds()),
		},
		"refresh_interval": {
			Type:        framework.TypeDurationSecond,
			Description: "How often the active node refreshes cached certificates in the background and looks for rotations in NHN's list; 0 turns it off.",
			Default:     int(defaultRefreshInterval.Seconds()),
		},
		"hosts_wildcards": {
			Type:        framework.TypeBool,
			Description: "Whether hosts/<hostname> may answer with a wildcard certificate (whose key is then served for every host it covers); false: only a certificate whose SAN names the host exactly.",
			Default:     true,
		},
	}
}

func (b *backend) pathConfigExists(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	cfg, err := readConfig(ctx, req.Storage)
	return cfg != nil, err
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := readConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, nil // 404
	}
	return &logical.Response{Data: map[string]any{
		"app_key":          cfg.AppKey,
		"access_key_id":    cfg.AccessKeyID,
		"region":           cfg.Region,
		"api_version":      cfg.effectiveAPIVersion(),
		"endpoint":         cfg.effectiveEndpoint(),
		"auth_endpoint":    cfg.effectiveAuthEndpoint(),
		"cache_ttl":        int64(cfg.CacheTTL.Seconds()),
		"request_timeout":  int64(cfg.RequestTimeout.Seconds()),
		"refresh_interval": int64(cfg.RefreshInterval.Seconds()),
		"hosts_wildcards":  cfg.hostsWildcards(),
	}}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.configMu.Lock()
	defer b.configMu.Unlock()

	// Read under the lock: another write may have landed since the request
	// was routed.
	old, err := readConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	var cfg nhnConfig
	if old != nil {
		cfg = *old
	} else {
		cfg = nhnConfig{Region: regionPublic, CacheTTL: defaultCacheTTL, RequestTimeout: defaultRequestTimeout, RefreshInterval: defaultRefreshInterval}
	}

	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"app_key", &cfg.AppKey},
		{"access_key_id", &cfg.AccessKeyID},
		{"secret_access_key", &cfg.SecretAccessKey},
		{"region", &cfg.Region},
		{"api_version", &cfg.APIVersion},
		{"endpoint", &cfg.Endpoint},
		{"auth_endpoint", &cfg.AuthEndpoint},
	} {
		if v, ok := d.GetOk(f.name); ok {
			*f.dst = strings.TrimSpace(v.(string))
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Duration
	}{
		{"cache_ttl", &cfg.CacheTTL},
		{"request_timeout", &cfg.RequestTimeout},
		{"refresh_interval", &cfg.RefreshInterval},
	} {
		if v, ok := d.GetOk(f.name); ok {
			*f.dst = time.Duration(v.(int)) * time.Second
		}
	}

	if v, ok := d.GetOk("hosts_wildcards"); ok {
		w := v.(bool)
		cfg.HostsWildcards = &w
	}

	var warnings []string
	if msg := validateConfig(&cfg, &warnings); msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	identityChanged := old == nil || old.identity() != cfg.identity()
	if identityChanged {
		cfg.Generation, err = newGeneration()
		if err != nil {
			return nil, err
		}
	}
	if err := writeConfig(ctx, req.Storage, &cfg); err != nil {
		return nil, err
	}
	b.resetKeeping(!identityChanged)
	if identityChanged && old != nil {
		if err := b.cache.purge(ctx, req.Storage); err != nil {
			warnings = append(warnings, "cached certificates of the previous configuration could not all be removed from storage; they are ignored: "+err.Error())
		}
	}
	b.Logger().Info("configuration written", "region", cfg.Region, "api_version", cfg.effectiveAPIVersion(), "endpoint", cfg.effectiveEndpoint(), "cache_dropped", identityChanged && old != nil)
	if len(warnings) == 0 {
		return nil, nil
	}
	return &logical.Response{Warnings: warnings}, nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.configMu.Lock()
	defer b.configMu.Unlock()
	if err := deleteConfig(ctx, req.Storage); err != nil {
		return nil, err
	}
	b.reset()
	if err := b.cache.purge(ctx, req.Storage); err != nil {
		return nil, err
	}
	b.Logger().Info("configuration deleted; cached certificates dropped")
	return nil, nil
}

const pathConfigHelpSyn = `Configure how the engine reaches NHN Cloud Certificate Manager.`

const pathConfigHelpDesc = `
The engine reads certificates from one NHN Cloud project (app_key) with a
User Access Key (access_key_id and secret_access_key). The secret is stored
seal-wrapped and never returned by a read.

region "public" (default) uses API v1.3 with a User Access Key token issued
by the token service; region "gov" uses API v1.1, which sends the key in
request headers. endpoint and auth_endpoint override the region's URLs.

cache_ttl (default 1h) is how long a downloaded certificate is served before
it is fetched again; request_timeout (default 30s) bounds one upstream call.
refresh_interval (default 5m; 0 = off) is how often the active node lists
NHN's certificates, drops cached ones NHN no longer has, and downloads again
those rotated upstream or about to leave the cache, so reads do not wait.

hosts_wildcards (default true) lets hosts/<hostname> answer with a wildcard
certificate, whose key is then served for every host it covers; false
limits that path to certificates whose SAN names the host exactly.

Changing app_key, region, api_version, endpoint or the credentials drops
every cached certificate, and so does deleting the config. Fields left out
of an update keep their values.
`
