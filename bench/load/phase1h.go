package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// phase1Hosts compares a cached read of hosts/<hostname> with a cached read
// of certs/<name> through Vault over HTTP, back to back in each round (the
// order alternating), as phase 1 compares nhncert with the null plugin.
// The verdict is the median of the per-round throughput ratios, >= 0.95.
func phase1Hosts(ctx context.Context, o *options, r *report) error {
	v := newVaultClient(o.vaultAddr, o.vaultToken, o.conc)
	certs := target{name: "certs", path: o.nhnMount + "/certs/" + o.cert}
	hosts := target{name: "hosts", path: o.nhnMount + "/hosts/" + o.host}
	for _, t := range []target{certs, hosts} {
		if _, err := v.read(ctx, t.path); err != nil {
			return fmt.Errorf("reading %s: %w", t.path, err)
		}
	}
	r.printf("\n== phase 1h: cached hosts/<hostname> read against the cached certs/<name> read ==\n")
	r.printf("GET /v1/%s and GET /v1/%s, %d keep-alive clients, %s each per round, %d rounds, order alternating\n",
		certs.path, hosts.path, o.conc, o.duration, o.rounds)
	url := func(t target) string { return v.addr + "/v1/" + t.path }
	for _, t := range []target{certs, hosts} {
		if o.warmup > 0 {
			if s := hammer(ctx, v.http, url(t), o.vaultToken, o.conc, o.warmup); s.errors > 0 {
				return fmt.Errorf("warm-up of %s: %d of %d requests failed, first: %s", t.name, s.errors, s.requests, s.firstErr)
			}
		}
	}
	ratios := make([]float64, 0, o.rounds)
	var shown []string
	var errs int64
	var firstErr string
	r.printf("\n%-6s  %9s  %9s  %7s\n", "round", "certs/s", "hosts/s", "ratio")
	for round := range o.rounds {
		order := []target{certs, hosts}
		if round%2 == 1 {
			order = []target{hosts, certs}
		}
		rates := map[string]float64{}
		for _, t := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s := hammer(ctx, v.http, url(t), o.vaultToken, o.conc, o.duration)
			rates[t.name] = s.rate()
			errs += s.errors
			if firstErr == "" {
				firstErr = s.firstErr
			}
		}
		ratio := rates["hosts"] / rates["certs"]
		ratios = append(ratios, ratio)
		shown = append(shown, fmt.Sprintf("%.3f", ratio))
		r.printf("%-6d  %9.0f  %9.0f  %7.3f\n", round+1, rates["certs"], rates["hosts"], ratio)
	}
	m := median(ratios)
	r.printf("hosts / certs, median of the per-round ratios: %.3fx (target >= 0.95); per round: %s\n", m, strings.Join(shown, " "))
	if errs > 0 {
		r.printf("ERRORS: %d requests failed; first: %q\n", errs, firstErr)
	}
	lo, hi := slices.Min(ratios), slices.Max(ratios)
	r.verdict("1h", "cached read: req/s hosts/certs (>= 0.95x)", fmt.Sprintf("%.3fx median of %d rounds (%.3f..%.3f)", m, o.rounds, lo, hi), m >= 0.95 && errs == 0)
	return nil
}
