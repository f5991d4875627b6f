package nhncert

import (
	"time"

	"github.com/hashicorp/vault/sdk/framework"
)

// The static-secret rotation fields of a read (last_vault_rotation,
// rotation_period, ttl): what Vault Agent (consul-template) and the Vault
// Secrets Operator use to read a non-leased secret again at the moment it
// may have changed, instead of on a fixed timer.
//
// consul-template (dependency/vault_common.go, leaseCheckWait): a secret
// with no lease that has "rotation_period" and a "ttl" asserted to be a
// json.Number sleeps ttl+1 s before the next read; Agent's
// static_secret_render_interval only applies when that gives nothing. VSO
// (VaultDynamicSecret with allowStaticCreds) treats the secret as rotating
// when last_vault_rotation parses as RFC 3339 and rotation_period >= 1, and
// requeues ttl+0.5 s (plus a little jitter) later; it restarts workloads
// only when the data other than these three fields changed.

const (
	// minRotationTTL: VSO backs off in a loop at 2 s or less and
	// consul-template falls back to its default interval at 0.
	minRotationTTL = 3 * time.Second
	// maxRotationJitter bounds the spread added to ttl, so that a fleet of
	// Agents that read at the same second does not come back in one.
	maxRotationJitter = 30 * time.Second
	// rotationJitterShare is the spread's share of the time between two
	// checks of the copy.
	rotationJitterShare = 0.1
)

// rotationResponseFields declares the fields in both read paths' schemas.
var rotationResponseFields = map[string]*framework.FieldSchema{
	"last_vault_rotation": {Type: framework.TypeString, Description: "When the served copy was downloaded from NHN, RFC 3339 with fractional seconds."},
	"rotation_period":     {Type: framework.TypeInt64, Description: "Seconds between the engine's checks of NHN for this certificate: refresh_interval, or cache_ttl when the background refresh is off."},
	"ttl":                 {Type: framework.TypeInt64, Description: "Seconds from now until the served copy will have been checked against NHN again, plus a little jitter; at least 3."},
}

// rotationFields are the rotation fields of a read of e, served under cfg
// at now. They are computed per read and never stored in the cached map.
func (b *backend) rotationFields(cfg *nhnConfig, e *cacheEntry, now time.Time) map[string]any {
	var retryAt time.Time
	// A fresh copy (every cached hit) never takes the windows' lock.
	if !e.fresh(now, cfg.CacheTTL) {
		if w, ok := b.cache.retry.pending(cfg.Generation, e.name, now); ok {
			retryAt = w.next
		}
	}
	return rotationTiming(cfg, e.fetchedAt, b.refresher.nextCheck(), retryAt, now, b.jitter())
}

// rotationTiming is rotationFields with its inputs spelt out. nextCheck is
// when the next background run will have listed NHN (zero when no run is
// scheduled on this node); retryAt, when not zero, is the next attempt of
// the retry window of a stale copy served while NHN fails for it (neither
// reads nor the background run ask NHN before it); jitter is in [0, 1).
//
// The served copy is next checked against NHN by whichever comes first:
// that background run (it downloads a certificate NHN's list shows
// rotated), or the entry's expiry (the first read after it downloads). On
// a node with no run scheduled (refresh off, a performance standby) only
// the expiry is known; a performance standby's readers still come back
// within refresh_interval, to see what the active node's run stored.
func rotationTiming(cfg *nhnConfig, fetchedAt, nextCheck, retryAt, now time.Time, jitter float64) map[string]any {
	period := rotationPeriod(cfg)
	next := fetchedAt.Add(cfg.CacheTTL)
	// A copy past its expiry is a stale one served while NHN fails: the
	// retry window's next attempt, or else the background run, when there
	// is one, is when NHN is asked again.
	switch {
	case !retryAt.IsZero():
		next = retryAt
	case cfg.RefreshInterval > 0 && !nextCheck.IsZero() && (nextCheck.Before(next) || !now.Before(next)):
		next = nextCheck
	}
	// The spread is a share of how often the copy is checked: the period,
	// or cache_ttl when that is shorter (the entry then expires between
	// runs), so that a short cache_ttl is not stretched by a long jitter.
	cadence := period
	if cfg.CacheTTL > 0 {
		cadence = min(cadence, cfg.CacheTTL)
	}
	spread := min(time.Duration(float64(cadence)*rotationJitterShare), maxRotationJitter)
	ttl := next.Sub(now) + time.Duration(jitter*float64(spread))
	// A node with the refresh on but no run of its own (a performance
	// standby) learns of a rotation only when the active node's download
	// reaches its storage: its readers come back within refresh_interval,
	// not at the copy's expiry (up to cache_ttl later).
	if cfg.RefreshInterval > 0 && nextCheck.IsZero() {
		ttl = min(ttl, cfg.RefreshInterval)
	}
	ttl = max(ttl, minRotationTTL)
	return map[string]any{
		"last_vault_rotation": fetchedAt.UTC().Format(time.RFC3339Nano),
		// At least 1: VSO does not treat a secret with rotation_period 0
		// as rotating, and would never read it again (cache_ttl=0 with
		// the refresh off downloads on every read).
		"rotation_period": max(ceilSeconds(period), 1),
		"ttl":             ceilSeconds(ttl),
	}
}

// rotationPeriod is how often the engine checks NHN for a certificate:
// refresh_interval, or cache_ttl when the background refresh is off.
func rotationPeriod(cfg *nhnConfig) time.Duration {
	if cfg.RefreshInterval > 0 {
		return cfg.RefreshInterval
	}
	return cfg.CacheTTL
}

// ceilSeconds rounds d up to whole seconds: a reader that comes back after
// ttl seconds must not come back before the check.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
