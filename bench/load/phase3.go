package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// The plugin's list settings (client.go: listPageSize, listParallel), to
// say what the measured calls should be; the benchmark measures, these only
// explain.
const (
	pluginPageSize     = 100
	pluginListParallel = 8
)

// phase3: LIST over many certificates, cold (fresh mount: no token, no
// list seen), with latency on every upstream request.
func phase3(ctx context.Context, o *options, r *report) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	v := newVaultClient(o.vaultAddr, o.vaultToken, 2)
	admin := &emulator.Admin{BaseURL: o.emulatorURL}

	if err := admin.SetLatency(ctx, 0); err != nil {
		return err
	}
	if err := admin.Seed(ctx, "list", o.listCount); err != nil {
		return fmt.Errorf("seeding %d certificates: %w", o.listCount, err)
	}
	certs, err := admin.Certs(ctx)
	if err != nil {
		return err
	}
	want := len(certs)
	mount := fmt.Sprintf("bench-list-%d", time.Now().UnixNano())
	if err := v.enableNHN(ctx, mount, o.nhnPlugin, o.nhnVersion, o.emulatorURL); err != nil {
		return fmt.Errorf("mounting %s: %w", mount, err)
	}
	if err := admin.SetLatency(ctx, o.listLatency); err != nil {
		return err
	}
	defer admin.SetLatency(context.WithoutCancel(ctx), 0)

	pages := (want + pluginPageSize - 1) / pluginPageSize
	// One token, then page 1 (it says how many pages there are), then the
	// rest in waves of listParallel.
	floor := time.Duration(2+(pages-1+pluginListParallel-1)/pluginListParallel) * o.listLatency
	r.printf("\n== phase 3: LIST %s/certs?status=all over %d certificates, %s per upstream request ==\n", mount, want, o.listLatency)
	r.printf("plugin: page size %d, at most %d pages in flight (listParallel); %d pages: 1 token, page 1, then %d waves of 8, so at %s a request the floor is %s\n",
		pluginPageSize, pluginListParallel, pages, (pages-1+pluginListParallel-1)/pluginListParallel, o.listLatency, ms(floor))
	r.printf("load average before: %s\n", loadAvg())

	list := func() (int, time.Duration, emulator.Stats, error) {
		if err := admin.ResetStats(ctx); err != nil {
			return 0, 0, emulator.Stats{}, err
		}
		var out struct {
			Data struct {
				Keys []string `json:"keys"`
			} `json:"data"`
		}
		t0 := time.Now()
		err := v.do(ctx, "LIST", mount+"/certs?status=all", nil, &out)
		took := time.Since(t0)
		if err != nil {
			return 0, took, emulator.Stats{}, err
		}
		st, err := admin.Stats(ctx)
		return len(out.Data.Keys), took, st, err
	}
	n, cold, st, err := list()
	if err != nil {
		return fmt.Errorf("cold LIST: %w", err)
	}
	r.printf("cold LIST: %s, %d keys (want %d); upstream: %d token exchange, %d list pages, %d downloads\n",
		ms(cold), n, want, st.TokenIssued, st.ListCalls, st.FileCalls)
	n2, warm, st2, err := list()
	if err != nil {
		return fmt.Errorf("warm LIST: %w", err)
	}
	r.printf("warm LIST: %s, %d keys; upstream: %d token exchange, %d list pages (the list itself is not cached: NHN is the source of truth)\n",
		ms(warm), n2, st2.TokenIssued, st2.ListCalls)
	// The same with no upstream latency: what remains is processing
	// (emulator, plugin, Vault, and this client decoding 10,000 entries).
	if err := admin.SetLatency(ctx, 0); err != nil {
		return err
	}
	_, bare, st3, err := list()
	if err != nil {
		return fmt.Errorf("LIST without latency: %w", err)
	}
	r.printf("LIST with no upstream latency: %s (%d list pages): the processing part of the above\n", ms(bare), st3.ListCalls)
	r.printf("load average after: %s\n", loadAvg())

	pass := n == want && cold < 3*time.Second
	r.printf("target: cold LIST under 3s: %s\n", passWord(pass))
	r.verdict("3", fmt.Sprintf("cold LIST of %d certs, %s upstream (< 3s)", want, o.listLatency),
		fmt.Sprintf("%s; %d list calls + %d token; warm %s; 0-latency %s", ms(cold), st.ListCalls, st.TokenIssued, ms(warm), ms(bare)), pass)
	return nil
}
