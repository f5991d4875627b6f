// Command load is nhncert's load benchmark (not shipped): it drives a real
// Vault over HTTP on loopback and the NHN emulator's admin API, and prints
// a table of what it measured against the targets of the performance issue.
//
//	phase 1  cached certs/<name> read, 16 keep-alive clients, a fixed
//	         duration per target per round, several rounds with the target
//	         order changed: nhncert vs a null plugin (the floor for an
//	         external plugin) vs a KV-v1 read of the same JSON
//	phase 2  200 concurrent reads of one uncached name with 200 ms upstream
//	         latency: exactly 1 download and at most 1 token exchange
//	phase 3  a cold LIST over 10,000 certificates with 20 ms upstream
//	         latency: under 3 s, upstream calls counted
//
// Every phase stops by itself. scripts/bench.sh (make bench) starts Vault
// and the emulator, registers the plugins and runs this.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type options struct {
	vaultAddr, vaultToken string
	vaultPID              int
	emulatorURL           string

	pluginDir                   string
	nhnPlugin, nhnVersion       string
	nullPlugin                  string
	nhnMount, nullMount, kvPath string
	cert                        string
	host                        string

	conc     int
	duration time.Duration
	rounds   int
	warmup   time.Duration

	burst        int
	burstLatency time.Duration

	listCount   int
	listLatency time.Duration

	phases     string
	profileDir string
	profileDur time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.vaultAddr, "vault-addr", os.Getenv("VAULT_ADDR"), "Vault's address (loopback only)")
	flag.StringVar(&o.vaultToken, "vault-token", os.Getenv("VAULT_TOKEN"), "Vault token (root in dev mode)")
	flag.IntVar(&o.vaultPID, "vault-pid", 0, "Vault's PID, to report its CPU time per request (0: not reported)")
	flag.StringVar(&o.emulatorURL, "emulator", "", "the NHN emulator's base URL (loopback only)")
	flag.StringVar(&o.pluginDir, "plugin-dir", "", "Vault's plugin directory, to find the plugin processes for CPU time and profiles")
	flag.StringVar(&o.nhnPlugin, "nhncert-plugin", "vault-plugin-secrets-nhncert", "nhncert's plugin name as registered")
	flag.StringVar(&o.nhnVersion, "nhncert-version", "v0.1.0", "nhncert's registered version")
	flag.StringVar(&o.nullPlugin, "null-plugin", "nhncert-bench-null", "the null plugin's name as registered (file name in -plugin-dir)")
	flag.StringVar(&o.nhnMount, "nhncert-mount", "nhncert", "mount of nhncert, configured for the emulator")
	flag.StringVar(&o.nullMount, "null-mount", "null", "mount of the null plugin")
	flag.StringVar(&o.kvPath, "kv-mount", "kv", "mount of a KV version 1 engine")
	flag.StringVar(&o.cert, "cert", "example.com", "certificate read in phase 1")
	flag.StringVar(&o.host, "host", "www.example.com", "host read in phase 1h (hosts/<hostname> against certs/<cert>)")
	flag.IntVar(&o.conc, "concurrency", 16, "phase 1: concurrent keep-alive clients")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "phase 1: duration per target per round")
	flag.IntVar(&o.rounds, "rounds", 18, "phase 1: rounds; each runs the targets in another order (every 6 rounds cover every order once)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "phase 1: unrecorded load per target before the rounds")
	flag.IntVar(&o.burst, "burst", 200, "phase 2: concurrent reads of one uncached name")
	flag.DurationVar(&o.burstLatency, "burst-latency", 200*time.Millisecond, "phase 2: emulator latency per upstream request")
	flag.IntVar(&o.listCount, "list-count", 10000, "phase 3: certificates seeded")
	flag.DurationVar(&o.listLatency, "list-latency", 20*time.Millisecond, "phase 3: emulator latency per upstream request")
	flag.StringVar(&o.phases, "phases", "1,1h,2,3", "phases to run")
	flag.StringVar(&o.profileDir, "profile-dir", "", "phase 1: if set (and perf works), profile the nhncert and null plugin processes with perf into this directory")
	flag.DurationVar(&o.profileDur, "profile-duration", 8*time.Second, "phase 1: load per profiled plugin")
	flag.Parse()
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}

	// Everything is bounded: the phases by their own durations, the whole
	// run by this deadline on top.
	budget := time.Duration(o.rounds*5)*o.duration + 3*o.warmup + 2*o.profileDur + 10*time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	r := &report{out: os.Stdout}
	code := run(ctx, &o, r)
	r.summary()
	os.Exit(code)
}

func (o *options) check() error {
	for _, a := range []struct{ flag, v string }{{"-vault-addr", o.vaultAddr}, {"-emulator", o.emulatorURL}} {
		if a.v == "" {
			return fmt.Errorf("%s is required", a.flag)
		}
		if !isLoopbackURL(a.v) {
			return fmt.Errorf("%s %q is not a loopback http URL; this benchmark runs on loopback only", a.flag, a.v)
		}
	}
	if o.vaultToken == "" {
		return fmt.Errorf("-vault-token (or VAULT_TOKEN) is required")
	}
	if o.conc < 1 || o.rounds < 1 || o.duration <= 0 || o.burst < 1 || o.listCount < 0 {
		return fmt.Errorf("-concurrency, -rounds, -duration and -burst must be positive")
	}
	return nil
}

func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func run(ctx context.Context, o *options, r *report) int {
	want := map[string]bool{}
	for _, p := range strings.Split(o.phases, ",") {
		want[strings.TrimSpace(p)] = true
	}
	failed := false
	if want["1"] {
		if err := phase1(ctx, o, r); err != nil {
			r.printf("phase 1: ERROR: %v\n", err)
			r.verdict("1", "cached read vs null plugin", "error: "+err.Error(), false)
			failed = true
		}
	}
	if want["1h"] && ctx.Err() == nil {
		if err := phase1Hosts(ctx, o, r); err != nil {
			r.printf("phase 1h: ERROR: %v\n", err)
			r.verdict("1h", "cached hosts read vs certs read", "error: "+err.Error(), false)
			failed = true
		}
	}
	if want["2"] && ctx.Err() == nil {
		if err := phase2(ctx, o, r); err != nil {
			r.printf("phase 2: ERROR: %v\n", err)
			r.verdict("2", "concurrent uncached reads", "error: "+err.Error(), false)
			failed = true
		}
	}
	if want["3"] && ctx.Err() == nil {
		if err := phase3(ctx, o, r); err != nil {
			r.printf("phase 3: ERROR: %v\n", err)
			r.verdict("3", "cold LIST", "error: "+err.Error(), false)
			failed = true
		}
	}
	if ctx.Err() != nil {
		r.printf("stopped: %v\n", ctx.Err())
		failed = true
	}
	if failed || r.failed() {
		return 1
	}
	return 0
}

// report prints as it goes and keeps the verdicts for the summary.
type report struct {
	out      io.Writer
	verdicts []verdict
}

type verdict struct {
	id, what, result string
	pass             bool
	info             bool // reported, not a target
}

func (r *report) printf(format string, args ...any) { fmt.Fprintf(r.out, format, args...) }

func (r *report) verdict(id, what, result string, pass bool) {
	r.verdicts = append(r.verdicts, verdict{id: id, what: what, result: result, pass: pass})
}

func (r *report) info(id, what, result string) {
	r.verdicts = append(r.verdicts, verdict{id: id, what: what, result: result, info: true})
}

func (r *report) failed() bool {
	for _, v := range r.verdicts {
		if !v.info && !v.pass {
			return true
		}
	}
	return false
}

func (r *report) summary() {
	r.printf("\n== summary (targets of the performance issue) ==\n")
	r.printf("%-2s  %-44s  %-58s  %s\n", "#", "target", "measured", "verdict")
	for _, v := range r.verdicts {
		s := "FAIL"
		switch {
		case v.info:
			s = "(reported)"
		case v.pass:
			s = "PASS"
		}
		r.printf("%-2s  %-44s  %-58s  %s\n", v.id, v.what, v.result, s)
	}
}

func passWord(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func ms(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
}
