package nhncert

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

const (
	regionPublic = "public"
	regionGov    = "gov"

	defaultCacheTTL        = time.Hour
	maxCacheTTL            = 30 * 24 * time.Hour
	defaultRequestTimeout  = 30 * time.Second
	minRequestTimeout      = time.Second
	maxRequestTimeout      = 5 * time.Minute
	defaultRefreshInterval = 5 * time.Minute
	maxRefreshInterval     = 24 * time.Hour
	maxFieldLength         = 1024
)

// regionEndpoints are the default Certificate Manager and token service
// base URLs per region.
var regionEndpoints = map[string]struct{ certs, auth, api string }{
	regionPublic: {"https://certmanager.api.nhncloudservice.com", "https://oauth.api.nhncloudservice.com", nhn.V13},
	regionGov:    {"https://certmanager.api.gov-nhncloudservice.com", "https://oauth.api.gov-nhncloudservice.com", nhn.V11},
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
	// HostsWildcards says whether hosts/<hostname> may answer with a
	// wildcard certificate; nil (a config written before the field) is
	// the default, true.
	HostsWildcards *bool `json:"hosts_wildcards,omitempty"`
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

// hostsWildcards is the hosts_wildcards field, true unless set to false.
func (c *nhnConfig) hostsWildcards() bool {
	return c.HostsWildcards == nil || *c.HostsWildcards
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

func (c *nhnConfig) clientConfig() nhn.Config {
	return nhn.Config{
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
		return fmt.Sprintf("unknown region %q; use %q or %q", safetext.Clean(cfg.Region, 40), regionPublic, regionGov)
	}
	if v := cfg.APIVersion; v != "" && v != nhn.V11 && v != nhn.V13 {
		return fmt.Sprintf("unknown api_version %q; use %q or %q", safetext.Clean(v, 40), nhn.V13, nhn.V11)
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
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") || u.Opaque != "":
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
