package nhncert

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// The mount's Prometheus metrics (CONTRACT.md, "nhncert/metrics"). The
// plugin is multiplexed (one process serves every mount of it on the node),
// so each backend has a registry of its own: a global one would mix the
// mounts. What counts on the read path is resolved once, here, so that
// counting a cached read is one atomic add, never a lock or a label lookup.
// What describes state (the certificates of the last list, the cache, the
// token) is read when Prometheus scrapes (metrics_scrape.go).
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
