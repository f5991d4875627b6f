package nhncert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	configPath = "config"

	regionPublic = "public"
	regionGov    = "gov"
	apiV11       = "v1.1"
	apiV13       = "v1.3"

	defaultCacheTTL       = time.Hour
	maxCacheTTL           = 30 * 24 * time.Hour
	defaultRequestTimeout = 30 * time.Second
	minRequestTimeout     = time.Second
	maxRequestTimeout     = 5 * time.Minute
	maxFieldLength        = 1024
)

// regionEndpoints are the default Certificate Manager and token service
// base URLs per region.
var regionEndpoints = map[string]struct{ certs, auth, api string }{
	regionPublic: {"https://certmanager.api.nhncloudservice.com", "https://oauth.api.nhncloudservice.com", apiV13},
	regionGov:    {"https://certmanager.api.gov-nhncloudservice.com", "https://oauth.api.gov-nhncloudservice.com", apiV11},
}

// nhnConfig is the mount's configuration as stored. Region-dependent fields
// are stored as written ("" = the region's default), so that changing the
// region moves the defaults with it.
type nhnConfig struct {
	AppKey          string        `json:"app_key"`
	AccessKeyID     string        `json:"access_key_id"`
	SecretAccessKey string        `json:"secret_access_key"`
	Region          string        `json:"region"`
	APIVersion      string        `json:"api_version,omitempty"`
	Endpoint        string        `json:"endpoint,omitempty"`
	AuthEndpoint    string        `json:"auth_endpoint,omitempty"`
	CacheTTL        time.Duration `json:"cache_ttl"`
	RequestTimeout  time.Duration `json:"request_timeout"`
	RefreshInterval time.Duration `json:"refresh_interval"`
	// Generation changes whenever the upstream identity changes (app key,
	// region, API version, endpoint, credentials). Cache entries carry it;
	// an entry of another generation is never served.
	Generation string `json:"generation"`
}

func (c *nhnConfig) effectiveAPIVersion() string {
	if c.APIVersion != "" {
		return c.APIVersion
	}
	return regionEndpoints[c.Region].api
}

func (c *nhnConfig) effectiveEndpoint() string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	return regionEndpoints[c.Region].certs
}

func (c *nhnConfig) effectiveAuthEndpoint() string {
	if c.AuthEndpoint != "" {
		return c.AuthEndpoint
	}
	return regionEndpoints[c.Region].auth
}

// identity is what names the upstream data; when it changes, cached
// certificates no longer belong to this config.
func (c *nhnConfig) identity() string {
	return strings.Join([]string{c.AppKey, c.Region, c.effectiveAPIVersion(), c.effectiveEndpoint(), c.AccessKeyID, c.SecretAccessKey}, "\x00")
}

func (c *nhnConfig) clientConfig() clientConfig {
	return clientConfig{
		APIVersion:      c.effectiveAPIVersion(),
		Endpoint:        c.effectiveEndpoint(),
		AuthEndpoint:    c.effectiveAuthEndpoint(),
		AppKey:          c.AppKey,
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		Timeout:         c.RequestTimeout,
		UserAgent:       userAgent(),
	}
}

func pathConfig(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: configPath,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Fields: map[string]*framework.FieldSchema{
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
				AllowedValues: []any{apiV13, apiV11},
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
		},
		ExistenceCheck: b.pathConfigExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathConfigRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "configuration"},
			},
			logical.CreateOperation: &framework.PathOperation{
				Callback:                  b.pathConfigWrite,
				ForwardPerformanceStandby: true,
				DisplayAttrs:              &framework.DisplayAttributes{OperationVerb: "configure"},
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                  b.pathConfigWrite,
				ForwardPerformanceStandby: true,
				DisplayAttrs:              &framework.DisplayAttributes{OperationVerb: "configure"},
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:                  b.pathConfigDelete,
				ForwardPerformanceStandby: true,
				DisplayAttrs:              &framework.DisplayAttributes{OperationVerb: "delete", OperationSuffix: "configuration"},
			},
		},
		HelpSynopsis:    pathConfigHelpSyn,
		HelpDescription: pathConfigHelpDesc,
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
	entry, err := logical.StorageEntryJSON(configPath, &cfg)
	if err != nil {
		return nil, err
	}
	entry.SealWrap = true
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, err
	}
	b.reset()
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
	if err := req.Storage.Delete(ctx, configPath); err != nil {
		return nil, err
	}
	b.reset()
	if err := b.cache.purge(ctx, req.Storage); err != nil {
		return nil, err
	}
	b.Logger().Info("configuration deleted; cached certificates dropped")
	return nil, nil
}

// validateConfig returns a message for the first problem in cfg, or "".
func validateConfig(cfg *nhnConfig, warnings *[]string) string {
	for _, f := range []struct{ name, val string }{
		{"app_key", cfg.AppKey},
		{"access_key_id", cfg.AccessKeyID},
		{"secret_access_key", cfg.SecretAccessKey},
	} {
		if f.val == "" {
			return fmt.Sprintf("%s is required", f.name)
		}
		if len(f.val) > maxFieldLength {
			return fmt.Sprintf("%s is %d bytes long; at most %d are allowed", f.name, len(f.val), maxFieldLength)
		}
		if strings.ContainsAny(f.val, "\r\n\x00") {
			return fmt.Sprintf("%s must not contain line breaks or NUL", f.name)
		}
	}
	if _, ok := regionEndpoints[cfg.Region]; !ok {
		return fmt.Sprintf("unknown region %q; use %q or %q", cleanText(cfg.Region, 40), regionPublic, regionGov)
	}
	if v := cfg.APIVersion; v != "" && v != apiV11 && v != apiV13 {
		return fmt.Sprintf("unknown api_version %q; use %q or %q", cleanText(v, 40), apiV13, apiV11)
	}
	for _, f := range []struct{ name, val string }{
		{"endpoint", cfg.Endpoint},
		{"auth_endpoint", cfg.AuthEndpoint},
	} {
		if f.val == "" {
			continue
		}
		if msg := validateURL(f.name, f.val); msg != "" {
			return msg
		}
		if u, _ := url.Parse(f.val); u.Scheme == "http" && !isLoopback(u.Hostname()) {
			*warnings = append(*warnings, fmt.Sprintf("%s uses plain http to a non-loopback host: credentials and private keys would cross the network unencrypted", f.name))
		}
	}
	switch {
	case cfg.CacheTTL < 0:
		return "cache_ttl must not be negative"
	case cfg.CacheTTL > maxCacheTTL:
		return fmt.Sprintf("cache_ttl must be at most %s", maxCacheTTL)
	case cfg.RequestTimeout < minRequestTimeout:
		return fmt.Sprintf("request_timeout must be at least %s", minRequestTimeout)
	case cfg.RequestTimeout > maxRequestTimeout:
		return fmt.Sprintf("request_timeout must be at most %s", maxRequestTimeout)
	case cfg.RefreshInterval < 0:
		return "refresh_interval must not be negative (0 turns the background refresh off)"
	case cfg.RefreshInterval > maxRefreshInterval:
		return fmt.Sprintf("refresh_interval must be at most %s", maxRefreshInterval)
	}
	if cfg.RefreshInterval > 0 && cfg.CacheTTL > 0 && 2*cfg.RefreshInterval > cfg.CacheTTL {
		*warnings = append(*warnings, "refresh_interval is more than half of cache_ttl: cached certificates can expire between background refreshes, and reads then wait on NHN")
	}
	return ""
}

// validateURL accepts an absolute http(s) URL with a host and nothing but
// a path after it.
func validateURL(field, raw string) string {
	if len(raw) > maxFieldLength {
		return fmt.Sprintf("%s is %d bytes long; at most %d are allowed", field, len(raw), maxFieldLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("%s is not a valid URL", field)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Sprintf("%s must be an http or https URL, like https://certmanager.api.nhncloudservice.com", field)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("%s must name a host", field)
	case u.User != nil:
		// Do not echo the URL: it holds credentials.
		return fmt.Sprintf("%s must not carry credentials (user:password@); set access_key_id and secret_access_key instead", field)
	case u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Sprintf("%s must be a base URL without query or fragment", field)
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("%s has an invalid port", field)
		}
	}
	return ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newGeneration() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// readConfig returns the stored config, or nil when there is none.
func readConfig(ctx context.Context, s logical.Storage) (*nhnConfig, error) {
	entry, err := s.Get(ctx, configPath)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var cfg nhnConfig
	if err := entry.DecodeJSON(&cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	return &cfg, nil
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

Changing app_key, region, api_version, endpoint or the credentials drops
every cached certificate, and so does deleting the config. Fields left out
of an update keep their values.
`
