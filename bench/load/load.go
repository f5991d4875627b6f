package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// slot is one target measured for one fixed duration.
type slot struct {
	target    string
	requests  int64
	errors    int64
	elapsed   time.Duration // first request sent to last answer read
	p99       time.Duration
	latencies []time.Duration
	vaultCPU  time.Duration // CPU time Vault used during the slot
	pluginCPU time.Duration // CPU time the target's plugin process used
	firstErr  string
}

func (s *slot) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.requests) / s.elapsed.Seconds()
}

// hammer sends GETs to url from conc goroutines over one shared
// keep-alive client until d has passed, and records every latency. Each
// goroutine sends its next request as soon as the previous answer is read
// (a closed loop), so req/s is what Vault sustains at this concurrency.
func hammer(ctx context.Context, client *http.Client, url, token string, conc int, d time.Duration) *slot {
	s := &slot{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	ctx, cancel := context.WithDeadline(ctx, end.Add(30*time.Second)) // bound a stuck request
	defer cancel()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			var n, errs int64
			var firstErr string
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				panic(err)
			}
			req.Header.Set("X-Vault-Token", token)
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = &vaultError{method: "GET", path: url, status: resp.StatusCode}
					}
				}
				lat = append(lat, time.Since(t0))
				n++
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
					if ctx.Err() != nil {
						break
					}
				}
			}
			mu.Lock()
			s.latencies = append(s.latencies, lat...)
			s.requests += n
			s.errors += errs
			if s.firstErr == "" {
				s.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	s.elapsed = time.Since(start)
	return s
}

// percentile returns the p-quantile (0..1) of sorted latencies, nearest
// rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// totals pools the slots of one target over all rounds: requests over the
// summed durations, percentiles over every latency recorded.
type totals struct {
	target             string
	requests, errors   int64
	elapsed            time.Duration
	p50, p99, p999     time.Duration
	vaultCPU, pluginCP time.Duration
	rounds             []*slot
	firstErr           string
}

func pool(target string, slots []*slot) *totals {
	t := &totals{target: target, rounds: slots}
	var all []time.Duration
	for _, s := range slots {
		t.requests += s.requests
		t.errors += s.errors
		t.elapsed += s.elapsed
		t.vaultCPU += s.vaultCPU
		t.pluginCP += s.pluginCPU
		all = append(all, s.latencies...)
		if t.firstErr == "" {
			t.firstErr = s.firstErr
		}
	}
	slices.Sort(all)
	t.p50, t.p99, t.p999 = percentile(all, 0.50), percentile(all, 0.99), percentile(all, 0.999)
	return t
}

func (t *totals) rate() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return float64(t.requests) / t.elapsed.Seconds()
}

// perReq returns d per request, in microseconds.
func (t *totals) perReq(d time.Duration) float64 {
	if t.requests == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(t.requests)
}
