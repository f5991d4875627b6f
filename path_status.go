package nhncert

import (
	"context"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The status path says how the background refresh is doing, the way Vault
// PKI's tidy-status does for its tidy: when it last ran, what it did, why
// it failed, when it runs next, and what is cached. Nothing in it is
// secret (no key, no token, no credential), so a monitoring policy may
// read it.

const statusPath = "status"

var statusResponseFields = map[string]*framework.FieldSchema{
	"configured":        {Type: framework.TypeBool, Description: "Whether the mount has a config."},
	"config_generation": {Type: framework.TypeString, Description: "Identifies the config's upstream identity; changes when app_key, region, api_version, endpoint or credentials change (cached certificates of another generation are never served). Empty when unconfigured."},
	"refresh_interval":  {Type: framework.TypeInt, Description: "Seconds between background runs; 0 when the background refresh is off."},
	"cache_ttl":         {Type: framework.TypeInt, Description: "Seconds a downloaded certificate is served before it is fetched again."},
	"refresher_running": {Type: framework.TypeBool, Description: "Whether this node runs the background refresh (the active node of the primary cluster, or a performance secondary for a local mount)."},
	"state":             {Type: framework.TypeString, Description: `"off" (unconfigured or refresh_interval 0), "standby" (this node does not run it), "waiting" (no run yet), "ok" (the last run succeeded) or "error" (it failed).`},
	"last_run_started":  {Type: framework.TypeString, Description: "When the last finished run started, RFC 3339 (UTC, seconds); empty before the first."},
	"last_run_finished": {Type: framework.TypeString, Description: "When it finished, RFC 3339; a run lasts until the next one is due, as it spreads its downloads."},
	"last_run_duration": {Type: framework.TypeFloat, Description: "Seconds the last run took, paced downloads included."},
	"last_run_check_duration": {Type: framework.TypeFloat,
		Description: "Seconds the last run took to list NHN and download what NHN removed or rotated: after that a rotation is served."},
	"last_run_listed":      {Type: framework.TypeInt, Description: "Certificates NHN listed in the last run."},
	"last_run_refreshed":   {Type: framework.TypeInt, Description: "Certificates the last run downloaded again."},
	"last_run_removed":     {Type: framework.TypeInt, Description: "Cached certificates the last run dropped, NHN no longer having them."},
	"last_run_failed":      {Type: framework.TypeInt, Description: "Downloads of the last run that failed (the cached copy is kept)."},
	"last_run_deferred":    {Type: framework.TypeInt, Description: "Certificates due in the last run that its rate bound left for the next run."},
	"last_run_error":       {Type: framework.TypeString, Description: "Why the last run failed; empty when it succeeded."},
	"consecutive_failures": {Type: framework.TypeInt, Description: "Runs that failed in a row; the wait between runs doubles with each (at most 1h)."},
	"panics":               {Type: framework.TypeInt, Description: "Runs (or downloads) that panicked and were recovered since the plugin started."},
	"runs":                 {Type: framework.TypeInt, Description: "Runs since the plugin started on this node."},
	"next_run_at":          {Type: framework.TypeString, Description: "When the next run starts, RFC 3339; empty when none is scheduled on this node."},
	"cached_in_memory":     {Type: framework.TypeInt, Description: "Certificates held parsed in this node's memory."},
	"cached_in_storage":    {Type: framework.TypeInt, Description: "Certificates cached in Vault's storage."},
	"token_expires_at":     {Type: framework.TypeString, Description: "When the v1.3 bearer token held expires, RFC 3339 (the token itself is never shown); empty when none is held or with v1.1."},
}

func pathStatus(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: statusPath + "$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathStatusRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "status"},
				// A performance standby does not run the refresh: the
				// active node answers, as PKI's tidy-status does.
				ForwardPerformanceStandby: true,
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: statusResponseFields}},
				},
			},
		},
		HelpSynopsis:    pathStatusHelpSyn,
		HelpDescription: pathStatusHelpDesc,
	}
}

// statusTime formats t for status: RFC 3339 in whole seconds (what jq's
// fromdate reads), "" for the zero time.
func statusTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (b *backend) pathStatusRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	sess, err := b.session(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	stored, err := b.cache.storedLen(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	r := &b.refresher
	rep := b.lastRunReport()
	running := r.running.Load() && b.WriteSafeReplicationState()
	data := map[string]any{
		"configured":              sess != nil,
		"config_generation":       "",
		"refresh_interval":        0,
		"cache_ttl":               0,
		"refresher_running":       running,
		"last_run_started":        statusTime(rep.started),
		"last_run_finished":       statusTime(rep.finished),
		"last_run_duration":       rep.finished.Sub(rep.started).Seconds(),
		"last_run_check_duration": time.Duration(r.lastRun.Load()).Seconds(),
		"last_run_listed":         rep.stats.listed,
		"last_run_refreshed":      rep.stats.refreshed,
		"last_run_removed":        rep.stats.removed,
		"last_run_failed":         rep.stats.failed,
		"last_run_deferred":       rep.stats.deferred,
		"last_run_error":          "",
		"consecutive_failures":    r.failures.Load(),
		"panics":                  r.panics.Load(),
		"runs":                    r.ran.Load(),
		"next_run_at":             "",
		"cached_in_memory":        b.cache.memoryLen(),
		"cached_in_storage":       stored,
		"token_expires_at":        "",
	}
	if rep.err != nil {
		data["last_run_error"] = rep.err.Error()
	}
	if at := r.nextRunAt.Load(); at != 0 {
		data["next_run_at"] = statusTime(time.Unix(0, at))
	}
	state := "off"
	if sess != nil {
		data["config_generation"] = sess.cfg.Generation
		data["refresh_interval"] = int64(sess.cfg.RefreshInterval.Seconds())
		data["cache_ttl"] = int64(sess.cfg.CacheTTL.Seconds())
		data["token_expires_at"] = statusTime(sess.client.TokenExpiresAt())
		switch {
		case sess.cfg.RefreshInterval <= 0:
		case !running:
			state = "standby"
		case rep.started.IsZero():
			state = "waiting"
		case rep.err != nil:
			state = "error"
		default:
			state = "ok"
		}
	}
	data["state"] = state
	return &logical.Response{Data: data}, nil
}

const pathStatusHelpSyn = `How the background refresh is doing, and what is cached.`

const pathStatusHelpDesc = `
Reports the background refresh the way PKI's tidy-status reports its tidy:
state, when the last run started and finished, what it listed, refreshed,
removed, failed and deferred, its error, when the next run starts; how many
certificates are cached in memory and in storage, the config generation,
whether this node runs the refresh, and when the NHN bearer token expires
(never the token).

Nothing here is secret: grant "read" on <mount>/status to monitoring. A
check that the refresh ran lately and without error:

  vault read -format=json nhncert/status | jq -e '.data.state == "ok" and (now - (.data.last_run_started | fromdate)) < 3 * .data.refresh_interval'
`
