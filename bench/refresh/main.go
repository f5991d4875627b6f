// Command refresh is nhncert's background-refresh scale benchmark (not
// shipped; run by scripts/bench.sh, make bench).
//
// It runs the engine in this process (nhncert.Factory on a
// logical.InmemStorage, as Vault would give it) against the NHN emulator in
// a separate process on loopback, with the time scale shrunk: N
// certificates, each read once per -read-period for at least two
// cache_ttls after a warm-up, every upstream request delayed by -latency.
// It reports the reads that waited on NHN, NHN's downloads per certificate
// per cache_ttl, how evenly the downloads were spread, and memory. The
// reads go to metadata/<name>, which shares certs/<name>'s cache and says
// when the copy served was downloaded (cached_at): a read served a copy
// downloaded after it began is one that waited on NHN, whatever its
// latency on a loaded machine. Reads slower than half the upstream latency
// are counted as well.
//
// Why in process and not through Vault: what is measured is the refresh's
// scheduling (which reads wait, how many downloads NHN sees, when), which
// the gRPC hop to Vault does not change; phase 1 of bench/load measures
// that hop. In process, the read latency is the engine's own (microseconds
// on a hit, the emulator's latency on a miss), so a read that waited on NHN
// cannot hide in the noise of a shared 2-core machine, and the Go heap is
// the engine's. The emulator runs in its own process so that its 10,000
// certificates are not counted as the engine's memory. The storage's bytes
// (Vault's memory in production, not the plugin's) are reported apart.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	nhncert "github.com/nhncert/vault-plugin-secrets-nhncert"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

type options struct {
	emulatorBin     string
	n               int
	cacheTTL        time.Duration
	refreshInterval time.Duration
	latency         time.Duration
	measure         time.Duration
	readPeriod      time.Duration
	threshold       time.Duration
	readers         int
	label           string
}

func main() {
	var o options
	flag.StringVar(&o.emulatorBin, "emulator-bin", "bin/nhncert-emulator", "the emulator binary (started on 127.0.0.1 with -bulk N)")
	flag.IntVar(&o.n, "n", 2000, "certificates, all read regularly")
	flag.DurationVar(&o.cacheTTL, "cache-ttl", 60*time.Second, "the mount's cache_ttl (whole seconds)")
	flag.DurationVar(&o.refreshInterval, "refresh-interval", 5*time.Second, "the mount's refresh_interval (whole seconds)")
	flag.DurationVar(&o.latency, "latency", 200*time.Millisecond, "emulator latency per upstream request")
	flag.DurationVar(&o.measure, "measure", 0, "measured time after the warm-up (0: two cache_ttls)")
	flag.DurationVar(&o.readPeriod, "read-period", 0, "each certificate is read once per this (0: cache_ttl/4)")
	flag.DurationVar(&o.threshold, "threshold", 0, "reads slower than this are counted apart (0: half of -latency: a read that waited on NHN takes at least the latency)")
	flag.IntVar(&o.readers, "readers", 32, "concurrent readers")
	flag.StringVar(&o.label, "label", "", "label of the result row")
	flag.Parse()
	if o.measure == 0 {
		o.measure = 2 * o.cacheTTL
	}
	if o.readPeriod == 0 {
		o.readPeriod = o.cacheTTL / 4
	}
	if o.threshold == 0 {
		o.threshold = o.latency / 2
	}
	if o.n < 1 || o.latency <= 0 || o.cacheTTL < time.Second || o.refreshInterval < time.Second {
		fmt.Fprintln(os.Stderr, "refresh: -n, -latency must be positive; -cache-ttl and -refresh-interval at least 1s")
		os.Exit(2)
	}
	// Bounded: warm-up (N downloads at -readers in flight) plus the measured
	// time plus a margin.
	warm := time.Duration(o.n/o.readers+1) * o.latency * 3
	ctx, cancel := context.WithTimeout(context.Background(), warm+o.measure+5*time.Minute)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, "refresh: ERROR:", err)
		os.Exit(1)
	}
}

func certName(i int) string { return fmt.Sprintf("bulk%05d.example.com", i) }

// startEmulator starts the emulator with n bulk certificates on a free
// loopback port and returns its URL and a function that stops it.
func startEmulator(ctx context.Context, bin string, n int) (string, func(), error) {
	dir, err := os.MkdirTemp("", "nhncert-bench-refresh-")
	if err != nil {
		return "", nil, err
	}
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-addr-file", addrFile, "-seed", "none", "-bulk", fmt.Sprint(n))
	// The emulator logs every request: kept out of the report.
	logf, err := os.Create(filepath.Join(dir, "emulator.log"))
	if err != nil {
		return "", nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, err
	}
	stopEmu := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		_ = os.RemoveAll(dir)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			u := "http://" + strings.TrimSpace(string(b))
			admin := &emulator.Admin{BaseURL: u}
			wctx, wcancel := context.WithTimeout(ctx, time.Minute)
			err := admin.WaitHealthy(wctx)
			wcancel()
			if err != nil {
				stopEmu()
				return "", nil, err
			}
			return u, stopEmu, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopEmu()
			return "", nil, errors.New("the emulator did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func request(ctx context.Context, b logical.Backend, s logical.Storage, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	resp, err := b.HandleRequest(ctx, &logical.Request{Operation: op, Path: path, Data: data, Storage: s, MountPoint: "nhncert/"})
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	return resp, err
}

func run(ctx context.Context, o *options) error {
	fmt.Printf("== refresh scale: N=%d cache_ttl=%s refresh_interval=%s latency=%s read every %s, measured %s, threshold %s ==\n",
		o.n, o.cacheTTL, o.refreshInterval, o.latency, o.readPeriod, o.measure, o.threshold)
	fmt.Printf("load average at start: %s\n", loadAvg())
	emuURL, stopEmu, err := startEmulator(ctx, o.emulatorBin, o.n)
	if err != nil {
		return err
	}
	defer stopEmu()
	admin := &emulator.Admin{BaseURL: emuURL}
	if err := admin.SetLatency(ctx, o.latency); err != nil {
		return err
	}

	conf := logical.TestBackendConfig()
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: "nhncert", Level: hclog.Error, Output: os.Stderr})
	storage := &logical.InmemStorage{}
	conf.StorageView = storage
	be, err := nhncert.Factory(ctx, conf)
	if err != nil {
		return err
	}
	defer be.Cleanup(context.Background())
	if _, err := request(ctx, be, storage, logical.UpdateOperation, "config", map[string]any{
		"app_key": "demo-app-key", "access_key_id": "demo-access-key-id", "secret_access_key": "demo-secret-access-key",
		"endpoint": emuURL, "auth_endpoint": emuURL,
		"cache_ttl": fmt.Sprintf("%ds", int(o.cacheTTL.Seconds())), "refresh_interval": fmt.Sprintf("%ds", int(o.refreshInterval.Seconds())),
	}); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := be.Initialize(ctx, &logical.InitializationRequest{Storage: storage}); err != nil {
		return err
	}

	// Warm-up: every certificate read once (downloaded), as servers
	// starting up would.
	began := time.Now()
	if err := readAll(ctx, be, storage, o); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	fmt.Printf("warm-up: %d certificates read in %s\n", o.n, time.Since(began).Round(time.Millisecond))
	if err := admin.ResetStats(ctx); err != nil {
		return err
	}

	// Measured: each certificate read once per readPeriod, the reads of a
	// period spread evenly; NHN's counters sampled every second.
	var (
		mu       sync.Mutex
		lat      []time.Duration
		readErrs atomic.Int64
		// waitedNHN counts reads served a copy downloaded after they
		// began: what a read waiting on NHN means, whatever its latency.
		waitedNHN atomic.Int64
		samples   []int64 // file_calls each second
		lists     int64
		peakHeap  uint64
		peakRSS   int64
	)
	mctx, mcancel := context.WithTimeout(ctx, o.measure)
	defer mcancel()
	work := make(chan string, o.readers)
	var wg sync.WaitGroup
	for range o.readers {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1024)
			for name := range work {
				t0 := time.Now()
				resp, err := request(ctx, be, storage, logical.ReadOperation, "metadata/"+name, nil)
				took := time.Since(t0)
				if err != nil {
					readErrs.Add(1)
					continue
				}
				// The copy served was downloaded after the read began:
				// the read waited on NHN.
				if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(resp.Data["cached_at"])); err != nil {
					readErrs.Add(1)
				} else if at.After(t0) {
					waitedNHN.Add(1)
				}
				local = append(local, took)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var last int64
		for i := 0; ; i++ {
			select {
			case <-mctx.Done():
				return
			case <-tick.C:
			}
			st, err := admin.Stats(ctx)
			if err != nil {
				continue
			}
			samples = append(samples, st.FileCalls-last)
			last, lists = st.FileCalls, st.ListCalls
			if i%5 == 0 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peakHeap = max(peakHeap, ms.HeapInuse)
				peakRSS = max(peakRSS, rssBytes())
			}
		}
	}()
	start := time.Now()
	step := o.readPeriod / time.Duration(o.n)
feed:
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * step)
		if d := time.Until(at); d > 0 {
			select {
			case <-mctx.Done():
				break feed
			case <-time.After(d):
			}
		}
		select {
		case <-mctx.Done():
			break feed
		case work <- certName(k % o.n):
		}
	}
	close(work)
	wg.Wait()
	<-sampled
	measured := time.Since(start)
	st, err := admin.Stats(ctx)
	if err != nil {
		return err
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	storeBytes, storeKeys := storageBytes(ctx, storage)

	slices.Sort(lat)
	slow := 0
	for _, d := range lat {
		if d > o.threshold {
			slow++
		}
	}
	waited := int(waitedNHN.Load())
	cycles := measured.Seconds() / o.cacheTTL.Seconds()
	perCert := float64(st.FileCalls) / float64(o.n) / cycles
	mean, p99s, maxs := spread(samples)
	fmt.Printf("reads: %d (%d errors), waited on NHN (served a copy downloaded after the read began): %d (%.2f%%); slower than %s: %d; p50 %s p99 %s p99.9 %s max %s\n",
		len(lat), readErrs.Load(), waited, 100*float64(waited)/float64(max(len(lat), 1)), o.threshold, slow,
		pct(lat, 0.50), pct(lat, 0.99), pct(lat, 0.999), pct(lat, 1))
	fmt.Printf("NHN: %d downloads in %s = %.2f per certificate per cache_ttl; %d list calls (lists %d)\n",
		st.FileCalls, measured.Round(time.Second), perCert, st.ListCalls, lists)
	fmt.Printf("downloads per second: mean %.1f, p99 %d, max %d (demand N/cache_ttl = %.1f/s)\n",
		mean, p99s, maxs, float64(o.n)/o.cacheTTL.Seconds())
	fmt.Printf("memory: heap in use %s after GC (peak %s), RSS %s (peak %s); of which storage %s in %d entries (Vault's memory in production)\n",
		mib(ms.HeapInuse), mib(peakHeap), mib(uint64(rssBytes())), mib(uint64(peakRSS)), mib(storeBytes), storeKeys)
	fmt.Printf("load average at end: %s\n", loadAvg())
	label := o.label
	if label == "" {
		label = fmt.Sprintf("N=%d", o.n)
	}
	fmt.Printf("| %s | %d | %s / %s | %d | %d (%.2f%%) | %d | %s | %.2f | %.1f / %d | %s | %s | %s |\n",
		label, o.n, o.cacheTTL, o.refreshInterval, len(lat), waited, 100*float64(waited)/float64(max(len(lat), 1)), slow,
		pct(lat, 0.99), perCert, mean, maxs, mib(ms.HeapInuse-min(ms.HeapInuse, storeBytes)), mib(uint64(rssBytes())), loadAvg())
	// The targets: no read waited on NHN, about one download per
	// certificate per cache_ttl (the schedule's ~1.1, and what reads
	// fetched themselves, with a margin).
	pass := readErrs.Load() == 0 && waited == 0 && perCert <= 1.3
	fmt.Printf("verdict: %s (want 0 reads waiting on NHN and at most 1.3 downloads per certificate per cache_ttl)\n", map[bool]string{true: "PASS", false: "FAIL"}[pass])
	if readErrs.Load() > 0 {
		return fmt.Errorf("%d reads failed", readErrs.Load())
	}
	if !pass {
		return errors.New("a target was missed")
	}
	return nil
}

// readAll reads every certificate once, o.readers at a time.
func readAll(ctx context.Context, be logical.Backend, s logical.Storage, o *options) error {
	names := make(chan string)
	errc := make(chan error, o.readers)
	var wg sync.WaitGroup
	for range o.readers {
		wg.Go(func() {
			for name := range names {
				if _, err := request(ctx, be, s, logical.ReadOperation, "certs/"+name, nil); err != nil {
					select {
					case errc <- fmt.Errorf("%s: %w", name, err):
					default:
					}
				}
			}
		})
	}
feed:
	for i := range o.n {
		select {
		case <-ctx.Done():
			break feed
		case names <- certName(i):
		}
	}
	close(names)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func storageBytes(ctx context.Context, s logical.Storage) (uint64, int) {
	keys, err := logical.CollectKeys(ctx, s)
	if err != nil {
		return 0, 0
	}
	var n uint64
	for _, k := range keys {
		if e, err := s.Get(ctx, k); err == nil && e != nil {
			n += uint64(len(e.Value) + len(k))
		}
	}
	return n, len(keys)
}

func spread(perSecond []int64) (mean float64, p99, maxv int64) {
	if len(perSecond) == 0 {
		return 0, 0, 0
	}
	var sum int64
	for _, v := range perSecond {
		sum += v
	}
	s := slices.Clone(perSecond)
	slices.Sort(s)
	return float64(sum) / float64(len(s)), s[int(math.Ceil(0.99*float64(len(s))))-1], s[len(s)-1]
}

func pct(sorted []time.Duration, p float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	d := sorted[max(i, 0)]
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return d.Round(100 * time.Microsecond).String()
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb int64
			_, _ = fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
