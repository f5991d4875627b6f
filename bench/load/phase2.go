package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// phase2: many concurrent reads of one name nobody read before, on a fresh
// mount (no token yet), with a slow upstream. One download must serve them
// all, behind at most one token exchange.
func phase2(ctx context.Context, o *options, r *report) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	v := newVaultClient(o.vaultAddr, o.vaultToken, 4)
	admin := &emulator.Admin{BaseURL: o.emulatorURL}

	stamp := time.Now().UnixNano()
	mount := fmt.Sprintf("bench-burst-%d", stamp)
	name := fmt.Sprintf("burst-%d.example.com", stamp)
	if err := v.enableNHN(ctx, mount, o.nhnPlugin, o.nhnVersion, o.emulatorURL); err != nil {
		return fmt.Errorf("mounting %s: %w", mount, err)
	}
	if _, err := admin.AddCert(ctx, emulator.AddCertRequest{Name: name, KeyType: emulator.RSA, IncludeRoot: true, Shuffle: true}); err != nil {
		return fmt.Errorf("adding %s to the emulator: %w", name, err)
	}
	if err := admin.SetLatency(ctx, o.burstLatency); err != nil {
		return err
	}
	defer admin.SetLatency(context.WithoutCancel(ctx), 0)
	if err := admin.ResetStats(ctx); err != nil {
		return err
	}

	r.printf("\n== phase 2: %d concurrent reads of one uncached name, %s upstream latency ==\n", o.burst, o.burstLatency)
	r.printf("fresh mount %s/ (no token, empty cache), name %s; all readers released at once from a barrier\n", mount, name)
	r.printf("load average before: %s\n", loadAvg())

	// Each reader has its own connection (the pool keeps them all), so the
	// reads reach Vault together rather than queued on a few connections.
	client := &http.Client{Transport: newTransport(o.burst), Timeout: time.Minute}
	url := v.addr + "/v1/" + mount + "/certs/" + name
	type answer struct {
		status int
		serial string
		took   time.Duration
		err    error
	}
	answers := make([]answer, o.burst)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	var t0 time.Time
	for i := range o.burst {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			req.Header.Set("X-Vault-Token", o.vaultToken)
			ready.Done()
			<-start
			resp, err := client.Do(req)
			a := answer{err: err}
			if err == nil {
				a.status = resp.StatusCode
				var s struct {
					Data struct {
						Serial string `json:"serial_number"`
					} `json:"data"`
				}
				body, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if rerr == nil {
					_ = json.Unmarshal(body, &s)
				}
				a.serial, a.err = s.Data.Serial, rerr
			}
			a.took = time.Since(t0)
			answers[i] = a
		}()
	}
	ready.Wait()
	t0 = time.Now()
	close(start)
	done.Wait()
	wall := time.Since(t0)

	st, err := admin.Stats(ctx)
	if err != nil {
		return err
	}
	ok, same := 0, true
	var slowest time.Duration
	var firstErr string
	for _, a := range answers {
		if a.err == nil && a.status == http.StatusOK {
			ok++
		} else if firstErr == "" {
			firstErr = fmt.Sprintf("status %d, %v", a.status, a.err)
		}
		if a.serial != answers[0].serial || a.serial == "" {
			same = false
		}
		slowest = max(slowest, a.took)
	}
	downloads := st.FileCallsByName[name]
	r.printf("answered %d/%d with 200 in %s (slowest reader); same certificate in every answer: %v\n", ok, o.burst, ms(slowest), same)
	if firstErr != "" {
		r.printf("first failure: %s\n", firstErr)
	}
	r.printf("upstream calls: downloads of %s: %d (all files: %d), token exchanges: %d, list calls: %d\n",
		name, downloads, st.FileCalls, st.TokenIssued, st.ListCalls)

	// A read after the burst is a cache hit: no upstream call at all.
	if _, err := v.read(ctx, mount+"/certs/"+name); err != nil {
		return fmt.Errorf("re-reading %s: %w", name, err)
	}
	after, err := admin.Stats(ctx)
	if err != nil {
		return err
	}
	r.printf("one more read afterwards: %d new upstream calls\n", after.FileCalls+after.TokenIssued+after.ListCalls-st.FileCalls-st.TokenIssued-st.ListCalls)
	r.printf("load average after: %s (wall %s)\n", loadAvg(), ms(wall))
	pass := ok == o.burst && same && downloads == 1 && st.FileCalls == 1 && st.TokenIssued <= 1
	r.printf("target: exactly 1 download and at most 1 token exchange, every read answered: %s\n", passWord(pass))
	r.verdict("2", fmt.Sprintf("%d concurrent uncached reads, %s upstream", o.burst, o.burstLatency),
		fmt.Sprintf("%d download, %d token exchange, %d/%d OK in %s", downloads, st.TokenIssued, ok, o.burst, ms(slowest)), pass)
	return nil
}
