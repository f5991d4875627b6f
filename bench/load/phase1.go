package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"
)

type target struct {
	name       string
	path       string // Vault API path read
	pluginFile string // file name in the plugin directory ("" for built-in KV)
}

// Targets of phase 1, in the order of round 1.
func phase1Targets(o *options) []target {
	return []target{
		{name: "nhncert", path: o.nhnMount + "/certs/" + o.cert, pluginFile: o.nhnPlugin},
		{name: "null", path: o.nullMount + "/certs/" + o.cert, pluginFile: o.nullPlugin},
		{name: "kv", path: o.kvPath + "/" + o.cert},
	}
}

func phase1(ctx context.Context, o *options, r *report) error {
	v := newVaultClient(o.vaultAddr, o.vaultToken, o.conc)
	targets := phase1Targets(o)

	// The same JSON in all three: nhncert's answer, written to the null
	// plugin and to KV, then read back from each and compared.
	first, err := v.read(ctx, targets[0].path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", targets[0].path, err)
	}
	if len(first.Warnings) > 0 {
		r.printf("note: nhncert warns: %s\n", strings.Join(first.Warnings, "; "))
	}
	var data map[string]any
	if err := json.Unmarshal(first.Data, &data); err != nil || len(data) == 0 {
		return fmt.Errorf("nhncert's answer has no data: %v", err)
	}
	for _, t := range targets[1:] {
		if err := v.write(ctx, t.path, data); err != nil {
			return fmt.Errorf("writing the reference copy to %s: %w", t.path, err)
		}
	}
	for _, t := range targets[1:] {
		s, err := v.read(ctx, t.path)
		if err != nil {
			return fmt.Errorf("reading back %s: %w", t.path, err)
		}
		var got map[string]any
		if err := json.Unmarshal(s.Data, &got); err != nil || !reflect.DeepEqual(got, data) {
			return fmt.Errorf("%s does not hold the same JSON as nhncert (%v)", t.path, err)
		}
	}
	dataJSON, _ := json.Marshal(data)
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	pids := findPIDs(o.pluginDir, o.nhnPlugin, o.nullPlugin)
	pidOf := func(t target) int {
		if t.pluginFile == "" {
			return 0
		}
		return pids[t.pluginFile]
	}

	r.printf("\n== phase 1: cached read through Vault over HTTP ==\n")
	r.printf("GET /v1/<target> with %d keep-alive clients (closed loop), %s per target per round, %d rounds, order changed each round, %s unrecorded warm-up per target\n",
		o.conc, o.duration, o.rounds, o.warmup)
	r.printf("the same %d-byte JSON in all three (keys: %s)\n", len(dataJSON), strings.Join(keys, ", "))
	for _, t := range targets {
		pid := "built in"
		if t.pluginFile != "" {
			pid = "plugin pid " + fmt.Sprint(pidOf(t))
			if pidOf(t) == 0 {
				pid = "plugin pid unknown (no CPU time)"
			}
		}
		r.printf("  %-8s GET /v1/%s  (%s)\n", t.name, t.path, pid)
	}
	r.printf("load average before: %s\n", loadAvg())

	client := v.http
	url := func(t target) string { return v.addr + "/v1/" + t.path }
	for _, t := range targets {
		if o.warmup > 0 {
			s := hammer(ctx, client, url(t), o.vaultToken, o.conc, o.warmup)
			if s.errors > 0 {
				return fmt.Errorf("warm-up of %s: %d of %d requests failed, first: %s", t.name, s.errors, s.requests, s.firstErr)
			}
		}
	}

	byTarget := map[string][]*slot{}
	r.printf("\n%-6s  %-8s  %8s  %9s  %8s  %8s  %6s  %s\n", "round", "target", "requests", "req/s", "p50", "p99", "errors", "load avg")
	for round := range o.rounds {
		for _, i := range roundOrder(round) {
			t := targets[i]
			if ctx.Err() != nil {
				return ctx.Err()
			}
			pid := pidOf(t)
			v0, p0 := cpuTime(o.vaultPID), cpuTime(pid)
			s := hammer(ctx, client, url(t), o.vaultToken, o.conc, o.duration)
			s.vaultCPU, s.pluginCPU = cpuTime(o.vaultPID)-v0, cpuTime(pid)-p0
			s.target = t.name
			byTarget[t.name] = append(byTarget[t.name], s)
			sorted := slices.Clone(s.latencies)
			slices.Sort(sorted)
			s.p99 = percentile(sorted, 0.99)
			r.printf("%-6d  %-8s  %8d  %9.0f  %8s  %8s  %6d  %s\n", round+1, t.name, s.requests, s.rate(),
				ms(percentile(sorted, 0.5)), ms(s.p99), s.errors, loadAvg())
		}
	}
	r.printf("load average after: %s\n", loadAvg())

	tot := map[string]*totals{}
	for _, t := range targets {
		tot[t.name] = pool(t.name, byTarget[t.name])
	}
	nhn, null, kv := tot["nhncert"], tot["null"], tot["kv"]

	r.printf("\ntotals over %d rounds (req/s = all requests / all measured time; p50/p99 over every request)\n", o.rounds)
	r.printf("%-8s  %9s  %9s  %8s  %8s  %8s  %14s  %15s  %6s\n", "target", "requests", "req/s", "p50", "p99", "p99.9", "vault cpu/req", "plugin cpu/req", "errors")
	for _, t := range targets {
		x := tot[t.name]
		plug := "-"
		if t.pluginFile != "" && pidOf(t) != 0 {
			plug = fmt.Sprintf("%.0fus", x.perReq(x.pluginCP))
		}
		vcpu := "-"
		if o.vaultPID != 0 {
			vcpu = fmt.Sprintf("%.0fus", x.perReq(x.vaultCPU))
		}
		r.printf("%-8s  %9d  %9.0f  %8s  %8s  %8s  %14s  %15s  %6d\n", t.name, x.requests, x.rate(), ms(x.p50), ms(x.p99), ms(x.p999), vcpu, plug, x.errors)
	}

	// The verdict is on the median over rounds of the per-round ratio:
	// within a round nhncert and null are measured back to back, so a
	// ratio compares like with like, and the median keeps one round
	// disturbed by other work on the machine from deciding. The ratios of
	// the pooled totals are printed too.
	tputR, p99R := make([]float64, o.rounds), make([]float64, o.rounds)
	var tputS, p99S []string
	for i := range o.rounds {
		a, b := byTarget["nhncert"][i], byTarget["null"][i]
		tputR[i] = a.rate() / b.rate()
		p99R[i] = float64(a.p99) / float64(b.p99)
		tputS = append(tputS, fmt.Sprintf("%.3f", tputR[i]))
		p99S = append(p99S, fmt.Sprintf("%.3f", p99R[i]))
	}
	tput, p99 := median(tputR), median(p99R)
	r.printf("\nnhncert / null, median of the per-round ratios (the verdict): throughput %.3fx (target >= 0.95), p99 %.3fx (target <= 1.20)\n", tput, p99)
	r.printf("  per round: throughput %s; p99 %s\n", strings.Join(tputS, " "), strings.Join(p99S, " "))
	r.printf("  pooled totals: throughput %.3fx, p99 %.3fx\n", nhn.rate()/null.rate(), float64(nhn.p99)/float64(null.p99))
	if o.vaultPID != 0 && pidOf(targets[0]) != 0 && pidOf(targets[1]) != 0 {
		r.printf("  CPU per read (unaffected by other load): plugin %.3fx (%.0f vs %.0fus), Vault %.3fx (%.0f vs %.0fus)\n",
			nhn.perReq(nhn.pluginCP)/null.perReq(null.pluginCP), nhn.perReq(nhn.pluginCP), null.perReq(null.pluginCP),
			nhn.perReq(nhn.vaultCPU)/null.perReq(null.vaultCPU), nhn.perReq(nhn.vaultCPU), null.perReq(null.vaultCPU))
	}
	r.printf("nhncert / kv:   throughput %.3fx, p99 %.3fx (pooled; reported: KV has no gRPC hop)\n", nhn.rate()/kv.rate(), float64(nhn.p99)/float64(kv.p99))
	r.printf("null / kv:      throughput %.3fx, p99 %.3fx (pooled; the price of the external-plugin hop on this machine)\n", null.rate()/kv.rate(), float64(null.p99)/float64(kv.p99))

	errs := nhn.errors + null.errors + kv.errors
	if errs > 0 {
		r.printf("ERRORS: %d requests failed; first: nhncert %q null %q kv %q\n", errs, nhn.firstErr, null.firstErr, kv.firstErr)
	}
	r.verdict("1", "cached read: req/s nhncert/null (>= 0.95x)", fmt.Sprintf("%.3fx median of %d rounds (pooled %.3fx: %.0f vs %.0f req/s)", tput, o.rounds, nhn.rate()/null.rate(), nhn.rate(), null.rate()), tput >= 0.95 && errs == 0)
	r.verdict("1", "cached read: p99 nhncert/null (<= 1.2x)", fmt.Sprintf("%.3fx median of %d rounds (pooled %.3fx: %s vs %s)", p99, o.rounds, float64(nhn.p99)/float64(null.p99), ms(nhn.p99), ms(null.p99)), p99 <= 1.2 && errs == 0)
	r.info("1", "cached read: nhncert/kv (pooled)", fmt.Sprintf("req/s %.3fx (%.0f vs %.0f), p99 %.3fx (%s vs %s)", nhn.rate()/kv.rate(), nhn.rate(), kv.rate(), float64(nhn.p99)/float64(kv.p99), ms(nhn.p99), ms(kv.p99)))
	r.info("1", "cached read: p50 nhncert / null / kv", fmt.Sprintf("%s / %s / %s", ms(nhn.p50), ms(null.p50), ms(kv.p50)))
	if o.vaultPID != 0 && pidOf(targets[0]) != 0 && pidOf(targets[1]) != 0 {
		r.info("1", "CPU per read: plugin + Vault", fmt.Sprintf("nhncert %.0f+%.0fus, null %.0f+%.0fus, kv %.0fus",
			nhn.perReq(nhn.pluginCP), nhn.perReq(nhn.vaultCPU), null.perReq(null.pluginCP), null.perReq(null.vaultCPU), kv.perReq(kv.vaultCPU)))
	}

	if o.profileDir != "" {
		profilePlugins(ctx, o, r, client, targets, pidOf, url)
	}
	return nil
}

// roundOrder returns the order of the three targets in a round (0-based):
// six rounds go through all six orders, so that every target runs in every
// position and after every other target equally often.
func roundOrder(round int) []int {
	orders := [][]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}, {1, 0, 2}, {0, 2, 1}}
	return orders[round%len(orders)]
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// profilePlugins records, after the measured rounds, perf profiles of
// the plugin process and of Vault under the same load, per target, and
// prints where the time goes side by side. The profiled slots are not part
// of the measurement (perf slows what it samples).
func profilePlugins(ctx context.Context, o *options, r *report, client *http.Client, targets []target, pidOf func(target) int, url func(target) string) {
	r.printf("\n== phase 1 profile: where the CPU goes (perf, %d Hz, %s of the same load per target, not measured) ==\n", perfFreq, o.profileDur)
	if err := perfAvailable(); err != nil {
		r.printf("skipped: %v\n", err)
		return
	}
	plug, vault := map[string]*perfProfile{}, map[string]*perfProfile{}
	for _, t := range targets {
		type job struct {
			into map[string]*perfProfile
			pid  int
			file string
			errc chan error
		}
		var jobs []*job
		if pid := pidOf(t); t.pluginFile != "" && pid != 0 {
			jobs = append(jobs, &job{into: plug, pid: pid, file: filepath.Join(o.profileDir, "perf-plugin-"+t.name+".data")})
		}
		if o.vaultPID != 0 {
			jobs = append(jobs, &job{into: vault, pid: o.vaultPID, file: filepath.Join(o.profileDir, "perf-vault-"+t.name+".data")})
		}
		for _, j := range jobs {
			j.errc = make(chan error, 1)
			go func() { j.errc <- recordPerf(ctx, j.pid, o.profileDur, j.file) }()
		}
		time.Sleep(300 * time.Millisecond) // let perf attach
		s := hammer(ctx, client, url(t), o.vaultToken, o.conc, o.profileDur-500*time.Millisecond)
		for _, j := range jobs {
			if err := <-j.errc; err != nil {
				r.printf("%s: %v\n", t.name, err)
				continue
			}
			p, err := readPerf(ctx, t.name, j.file)
			if err != nil {
				r.printf("%s: %v\n", t.name, err)
				continue
			}
			p.reqs = s.requests
			j.into[t.name] = p
			rep := writeReport(ctx, j.file)
			r.printf("%-8s pid %-7d %6d samples over %6d requests  %s\n", t.name, j.pid, p.samples, s.requests, rep)
		}
	}
	cpuPerReq := func(p *perfProfile) float64 {
		if p == nil {
			return 0
		}
		return float64(p.samples) / perfFreq * 1e6 / float64(max(p.reqs, 1))
	}
	table := func(title string, groups []profileGroup, profs []*perfProfile) {
		r.printf("\n%-58s", title)
		for _, p := range profs {
			if p != nil {
				r.printf("  %14s", p.target)
			}
		}
		r.printf("\n%-58s", "  CPU per request (from samples)")
		for _, p := range profs {
			if p != nil {
				r.printf("  %12.0fus", cpuPerReq(p))
			}
		}
		r.printf("\n")
		for _, g := range groups {
			r.printf("%-58s", g.label)
			for _, p := range profs {
				if p != nil {
					a := p.share(g)
					r.printf("  %5.1f%% %5.1fus", 100*a, a*cpuPerReq(p))
				}
			}
			r.printf("\n")
		}
	}
	nhn, null := plug["nhncert"], plug["null"]
	if nhn != nil && null != nil {
		table("plugin process: share of samples (stack contains) / us per req", profileGroups, []*perfProfile{nhn, null})
		r.printf("\nnhncert's own code (inclusive):\n")
		for _, l := range nhn.pluginFrames(10, "(*backend)", "(*certCache)", "(*cacheEntry)", "renderCert", "validateName", "certError") {
			r.printf("  %s\n", l)
		}
		r.printf("null plugin's own code (inclusive):\n")
		for _, l := range null.pluginFrames(4, "main.") {
			r.printf("  %s\n", l)
		}
		for _, p := range []*perfProfile{nhn, null} {
			r.printf("top self (%s plugin process):\n", p.target)
			for _, l := range p.topSelf(8) {
				r.printf("  %s\n", l)
			}
		}
	}
	if len(vault) > 0 {
		table("Vault process: share of samples (stack contains) / us per req", vaultGroups, []*perfProfile{vault["nhncert"], vault["null"], vault["kv"]})
	}
}
