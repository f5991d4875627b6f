package nhncert

import (
	"bytes"
	"context"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// nhncert/metrics: what Prometheus scrapes, at /v1/<mount>/metrics with a
// Vault token, as it scrapes sys/metrics. The counters live in the mount's
// registry (metrics.go); the state (the last list, the cache, the token) is
// read here, at the scrape, so that nothing on the read path keeps it.

const metricsPath = "metrics"

// metricsContentType is the text exposition format, version 0.0.4.
var metricsContentType = string(expfmt.NewFormat(expfmt.TypeTextPlain))

func pathMetrics(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: metricsPath + "$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathMetricsRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "metrics"},
				// Not forwarded: like sys/metrics, each node tells its own
				// (its runs, its memory, the reads it answered).
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "The mount's metrics in the Prometheus text exposition format (raw body)."}},
				},
			},
		},
		HelpSynopsis:    pathMetricsHelpSyn,
		HelpDescription: pathMetricsHelpDesc,
	}
}

func (b *backend) pathMetricsRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMountPath(req)
	snap, err := b.metricsSnapshot(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	state := prometheus.NewRegistry()
	if err := state.Register(snap); err != nil {
		return nil, err
	}
	families, err := prometheus.Gatherers{b.metrics.reg, state}.Gather()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return nil, err
		}
	}
	return &logical.Response{Data: map[string]any{
		logical.HTTPContentType: metricsContentType,
		logical.HTTPRawBody:     buf.Bytes(),
		logical.HTTPStatusCode:  http.StatusOK,
	}}, nil
}

// certExpiry is one certificate of the last list, for the expiry family.
type certExpiry struct {
	name, id string
	notAfter time.Time
}

// stateSnapshot is the mount's state at a scrape; it collects as const
// metrics.
type stateSnapshot struct {
	certs           []certExpiry
	unexpired       int
	expired         int
	listed          bool // a list of the current config is known
	memory, storage int
	tokenExpires    time.Time
	lastSuccess     time.Time
	configured      bool
	storageKnown    bool
}

var (
	descExpiry = prometheus.NewDesc("nhncert_certificate_expiry_timestamp_seconds",
		"NotAfter (Unix seconds) of every certificate of the last list: the cached copy's when held, else the list's expirationDate (00:00 UTC of that day).",
		[]string{"name", "certificate_id"}, nil)
	descCertificates = prometheus.NewDesc("nhncert_certificates",
		"Certificates in the last list, by status (expired: NotAfter as above has passed).", []string{"status"}, nil)
	descCached = prometheus.NewDesc("nhncert_cached_certificates",
		"Certificates cached, by where: in this node's memory, or in Vault's storage.", []string{"where"}, nil)
	descToken = prometheus.NewDesc("nhncert_token_expiry_timestamp_seconds",
		"When the v1.3 bearer token held expires (Unix seconds); absent when none is held.", nil, nil)
	descLastSuccess = prometheus.NewDesc("nhncert_refresh_last_success_timestamp_seconds",
		"When the last successful background run on this node finished (Unix seconds); absent before the first.", nil, nil)
)

// metricsSnapshot reads the state the scrape shows.
func (b *backend) metricsSnapshot(ctx context.Context, s logical.Storage) (*stateSnapshot, error) {
	snap := &stateSnapshot{}
	if at := b.metrics.lastSuccess.Load(); at != 0 {
		snap.lastSuccess = time.Unix(0, at)
	}
	sess, err := b.session(ctx, s)
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return snap, nil
	}
	snap.configured = true
	gen := sess.cfg.Generation
	snap.tokenExpires = sess.client.TokenExpiresAt()
	mem := b.cache.entriesOf(gen)
	snap.memory = len(mem)
	if n, err := b.cache.storedLen(ctx, s); err == nil {
		snap.storage, snap.storageKnown = n, true
	}
	held := map[string]time.Time{}
	for name, r := range b.cache.index.of(gen) {
		if !r.notAfter.IsZero() {
			held[name] = r.notAfter
		}
	}
	for _, e := range mem {
		held[e.name] = e.bundle.Leaf.NotAfter
	}
	infos, ok := b.catalog.snapshot(gen)
	if !ok {
		return snap, nil
	}
	snap.listed = true
	now := b.now()
	for _, info := range infos {
		c := certExpiry{name: info.Name}
		if id, ok := info.CertificateID(); ok {
			c.id = strconv.FormatInt(id, 10)
		}
		if t, ok := held[info.Name]; ok {
			c.notAfter = t
		} else if t, err := time.Parse(time.DateOnly, info.ExpirationDate); err == nil {
			c.notAfter = t
		} else {
			continue // no date to show
		}
		if c.notAfter.After(now) {
			snap.unexpired++
		} else {
			snap.expired++
		}
		snap.certs = append(snap.certs, c)
	}
	sort.Slice(snap.certs, func(i, j int) bool { return snap.certs[i].name < snap.certs[j].name })
	return snap, nil
}

// Describe sends nothing: the snapshot is an unchecked collector, its
// series known only at the scrape.
func (*stateSnapshot) Describe(chan<- *prometheus.Desc) {}

func (s *stateSnapshot) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		if m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...); err == nil {
			ch <- m
		}
	}
	unix := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
	if !s.lastSuccess.IsZero() {
		gauge(descLastSuccess, unix(s.lastSuccess))
	}
	if !s.configured {
		return
	}
	gauge(descCached, float64(s.memory), "memory")
	if s.storageKnown {
		gauge(descCached, float64(s.storage), "storage")
	}
	if !s.tokenExpires.IsZero() {
		gauge(descToken, unix(s.tokenExpires))
	}
	if !s.listed {
		return
	}
	gauge(descCertificates, float64(s.unexpired), "unexpired")
	gauge(descCertificates, float64(s.expired), "expired")
	for _, c := range s.certs {
		gauge(descExpiry, unix(c.notAfter), c.name, c.id)
	}
}

const pathMetricsHelpSyn = `The mount's metrics, in the Prometheus text exposition format.`

const pathMetricsHelpDesc = `
Answers the Prometheus text exposition format (text/plain; version=0.0.4),
for Prometheus to scrape at /v1/<mount>/metrics with a Vault token whose
policy may read this path, as it scrapes sys/metrics. This node's view:
every certificate of the last list with its expiry
(nhncert_certificate_expiry_timestamp_seconds{name, certificate_id}), the
cache, the background runs, the requests to NHN by call and outcome, the
reads by result, the token's expiry and the build. Nothing in it is
secret.
`
