package nhncert

import (
	"bytes"
	"context"
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// The mount's Prometheus metrics (CONTRACT.md, "nhncert/metrics"). The
// plugin is multiplexed (one process serves every mount of it on the node),
// so each backend has a registry of its own: a global one would mix the
// mounts. What counts on the read path is resolved once, here, so that
// counting a cached read is one atomic add, never a lock or a label lookup.
// What describes state (the certificates of the last list, the cache, the
// token) is read when Prometheus scrapes (below).
//
// No family has a label or value taken from a secret: names and
// certificateIds are NHN's public metadata, outcomes a fixed set.

// readOutcome is what a read of certs/<name> was.
type readOutcome int

const (
	readHit   readOutcome = iota // served from the cache, NHN not asked
	readMiss                     // downloaded
	readStale                    // NHN failed; a cached copy served with a warning
	readError                    // refused
	numReadOutcomes
)

var readNames = [numReadOutcomes]string{"hit", "miss", "stale", "error"}

// mountMetrics is one mount's registry and the collectors the engine
// updates as it works. A nil *mountMetrics counts nothing (clients and
// caches built by tests without a backend).
type mountMetrics struct {
	reg *prometheus.Registry

	reads       [numReadOutcomes]prometheus.Counter
	requests    [nhn.NumCalls][nhn.NumOutcomes]prometheus.Counter
	requestTime [nhn.NumCalls]prometheus.Observer
	runs        [2]prometheus.Counter // ok, error
	runDuration prometheus.Histogram
	deferred    prometheus.Gauge
	// lastSuccess is when the last successful run finished (Unix
	// nanoseconds; 0: none yet, and the family is then absent rather than
	// "1970").
	lastSuccess atomic.Int64
}

func newMountMetrics(version string, panics func() float64) *mountMetrics {
	m := &mountMetrics{reg: prometheus.NewRegistry()}
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nhncert_reads_total", Help: "Reads of certs/<name>, by result: hit (from the cache), miss (downloaded), stale (NHN failed; a cached copy served with a warning), error.",
	}, []string{"result"})
	for i := range m.reads {
		m.reads[i] = reads.WithLabelValues(readNames[i])
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nhncert_upstream_requests_total", Help: "Requests to NHN, by call and outcome.",
	}, []string{"call", "outcome"})
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "nhncert_upstream_request_duration_seconds", Help: "Duration of requests to NHN, by call.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"call"})
	for c := range m.requests {
		for o := range m.requests[c] {
			m.requests[c][o] = requests.WithLabelValues(nhn.Call(c).String(), nhn.Outcome(o).String())
		}
		m.requestTime[c] = durations.WithLabelValues(nhn.Call(c).String())
	}
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nhncert_refresh_runs_total", Help: "Background refresh runs on this node, by result.",
	}, []string{"result"})
	m.runs[0], m.runs[1] = runs.WithLabelValues("ok"), runs.WithLabelValues("error")
	m.runDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "nhncert_refresh_run_duration_seconds", Help: "Duration of background runs (a run spreads its downloads up to the next one).",
		Buckets: []float64{.1, .5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600},
	})
	m.deferred = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nhncert_refresh_deferred", Help: "Certificates the last run left for the next one (its rate bound, or NHN failing for them).",
	})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nhncert_build_info", Help: "The plugin build (always 1).",
	}, []string{"version"})
	build.WithLabelValues(version).Set(1)
	m.reg.MustRegister(reads, requests, durations, runs, m.runDuration, m.deferred, build,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "nhncert_refresh_panics_total", Help: "Panics recovered in background runs and downloads.",
		}, panics))
	return m
}

// read counts one read of certs/<name>.
func (m *mountMetrics) read(o readOutcome) {
	if m != nil {
		m.reads[o].Inc()
	}
}

// Request counts one request to NHN and its duration: the mount's
// metrics are the NHN client's observer.
func (m *mountMetrics) Request(c nhn.Call, o nhn.Outcome, d time.Duration) {
	if m != nil {
		m.requests[c][o].Inc()
		m.requestTime[c].Observe(d.Seconds())
	}
}

// run counts a finished background run.
func (m *mountMetrics) run(rep runReport) {
	if m == nil || rep.started.IsZero() {
		return
	}
	m.runDuration.Observe(rep.finished.Sub(rep.started).Seconds())
	m.deferred.Set(float64(rep.stats.deferred))
	if rep.err != nil {
		m.runs[1].Inc()
		return
	}
	m.runs[0].Inc()
	m.lastSuccess.Store(rep.finished.UnixNano())
}

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
