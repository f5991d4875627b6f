package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// The chaos run's clients (chaos_test.go starts them): readers on every
// node, the config actor, the passphrase actor and the renewal actor,
// each recording every operation in the history.

// chaosActors are the clients.
type chaosActors struct {
	c        *chaosCluster
	token    string
	cold     []string
	http     *http.Client
	watchers sync.WaitGroup

	cfgMu   sync.Mutex
	deleted bool
	end     time.Time // when the faults end
}

// do sends one request to node n and records it as an op.
func (a *chaosActors) do(actor, kind string, n *raftNode, name, method, path string, q url.Values, body any) chaosOp {
	op := chaosOp{actor: actor, kind: kind, node: n.id, name: name, start: time.Now(), refresh: q.Get("refresh") == "true"}
	u := n.addr + "/v1/" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	req.Header.Set("X-Vault-Token", a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		op.end, op.err = time.Now(), err.Error()
		a.c.h.add(op)
		return op
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	op.end, op.status = time.Now(), resp.StatusCode
	var out struct {
		Data     map[string]any `json:"data"`
		Warnings []string       `json:"warnings"`
		Errors   []string       `json:"errors"`
	}
	_ = json.Unmarshal(b, &out)
	op.serial, _ = out.Data["serial_number"].(string)
	op.stale = strings.Contains(strings.Join(out.Warnings, " "), "stale")
	op.err = strings.Join(out.Errors, "; ")
	a.c.h.add(op)
	return op
}

func (a *chaosActors) read(actor string, n *raftNode, name string, refresh bool) chaosOp {
	var q url.Values
	if refresh {
		q = url.Values{"refresh": {"true"}}
	}
	return a.do(actor, "read", n, name, "GET", mount+"/certs/"+url.PathEscape(name), q, nil)
}

func (a *chaosActors) reader(ctx context.Context, n *raftNode, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for ctx.Err() == nil {
		switch x := rng.IntN(20); {
		case x == 0:
			a.do("reader", "list", n, "", "LIST", mount+"/certs", url.Values{"status": {"all"}}, nil)
		case x == 1:
			a.do("reader", "list", n, "", "LIST", mount+"/certs", nil, nil)
		default:
			a.read("reader", n, hotNames[rng.IntN(len(hotNames))], x == 2)
		}
		sleepCtx(ctx, time.Duration(100+rng.IntN(300))*time.Millisecond)
	}
}

// readCold reads every cold certificate once (the config was written:
// the cache may have been dropped).
func (a *chaosActors) readCold(actor string) {
	for i, name := range a.cold {
		a.read(actor, a.c.nodes[i%len(a.c.nodes)], name, false)
	}
}

// writeConfig writes the config through any node that answers (bounded
// attempts); extra are the fields besides the emulator's.
func (a *chaosActors) writeConfig(ctx context.Context, extra map[string]any) bool {
	body := map[string]any{"endpoint": a.c.em.url, "auth_endpoint": a.c.em.url, "app_key": a.c.em.appKey,
		"access_key_id": a.c.em.accessKeyID, "secret_access_key": a.c.em.secret, "refresh_interval": chaosInterval.String()}
	for k, v := range extra {
		body[k] = v
	}
	a.cfgMu.Lock()
	defer a.cfgMu.Unlock()
	// The deleted window ends when the first attempt starts: one that
	// timed out (its node paused or killed) may still have been applied.
	if a.deleted {
		a.c.h.mu.Lock()
		a.c.h.deleted[len(a.c.h.deleted)-1].to = time.Now()
		a.c.h.mu.Unlock()
		a.deleted = false
	}
	for i := 0; i < 20; i++ {
		op := a.do("config", "config-write", a.c.nodes[i%3], "", "POST", mount+"/config", nil, body)
		if op.status/100 == 2 {
			return true
		}
		sleepCtx(context.Background(), 500*time.Millisecond)
	}
	return false
}

// deleteConfig deletes the config; a delete acknowledged opens a window
// the checker holds to C1 and C2.
func (a *chaosActors) deleteConfig(ctx context.Context) bool {
	a.cfgMu.Lock()
	defer a.cfgMu.Unlock()
	for i := 0; i < 20; i++ {
		op := a.do("config", "config-delete", a.c.nodes[i%3], "", "DELETE", mount+"/config", nil, nil)
		if op.status/100 == 2 {
			if !a.deleted {
				a.c.h.mu.Lock()
				a.c.h.deleted = append(a.c.h.deleted, configWindow{from: op.end})
				a.c.h.mu.Unlock()
				a.deleted = true
			}
			return true
		}
		// An unanswered delete may or may not have happened: no
		// window is opened for it; the next write closes nothing.
		sleepCtx(context.Background(), 500*time.Millisecond)
	}
	return false
}

func (a *chaosActors) configActor(ctx context.Context, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	v11 := false
	for ctx.Err() == nil {
		sleepCtx(ctx, time.Duration(8+rng.IntN(10))*time.Second)
		if ctx.Err() != nil {
			return
		}
		switch rng.IntN(3) {
		case 0: // delete, stay deleted a while, write again
			a.deleteConfig(ctx)
			sleepCtx(context.Background(), time.Duration(2+rng.IntN(3))*time.Second)
			a.writeConfig(ctx, map[string]any{"api_version": apiVersion(v11)})
			a.readCold("config")
		case 1: // switch the identity
			v11 = !v11
			a.writeConfig(ctx, map[string]any{"api_version": apiVersion(v11)})
			a.readCold("config")
		default: // keep the identity
			a.writeConfig(ctx, map[string]any{"api_version": apiVersion(v11), "cache_ttl": fmt.Sprintf("%dm", 60+rng.IntN(60))})
		}
	}
}

func apiVersion(v11 bool) string {
	if v11 {
		return "v1.1"
	}
	return "v1.3"
}

func (a *chaosActors) passphraseActor(ctx context.Context, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	for ctx.Err() == nil {
		sleepCtx(ctx, time.Duration(5+rng.IntN(6))*time.Second)
		n := a.c.nodes[rng.IntN(3)]
		name := hotNames[rng.IntN(len(hotNames))]
		path := mount + "/passphrases/" + url.PathEscape(name)
		if rng.IntN(2) == 0 {
			a.do("passphrase", "passphrase-write", n, name, "POST", path, nil, map[string]any{"passphrase": "chaos-" + strconv.Itoa(rng.IntN(1000))})
		} else {
			a.do("passphrase", "passphrase-delete", n, name, "DELETE", path, nil, nil)
		}
	}
}

// renewalActor renews a hot certificate in NHN (or deletes it and
// registers it again) and watches every node until it serves the new
// file (C6).
func (a *chaosActors) renewalActor(ctx context.Context, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 4))
	// No renewal in the last 25 s of the faults: its watchers would
	// outlast the run.
	for ctx.Err() == nil {
		sleepCtx(ctx, time.Duration(10+rng.IntN(10))*time.Second)
		if ctx.Err() != nil || time.Until(a.end) < 25*time.Second {
			return
		}
		name := hotNames[rng.IntN(len(hotNames)-2)] // the first four: plain names
		at := time.Now()
		actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var serial string
		if rng.IntN(4) == 0 {
			err := a.c.em.admin.Remove(actx, name)
			if err == nil {
				var r emulator.AddCertResponse
				r, err = a.c.em.admin.AddCert(actx, emulator.AddCertRequest{Name: name, DNSNames: []string{name}})
				serial = r.Serial
			}
			if err != nil {
				a.c.log("renewal actor: re-registering %s: %v", name, err)
			}
		} else if r, err := a.c.em.admin.Rotate(actx, name); err == nil {
			serial = r.Serial
		} else {
			a.c.log("renewal actor: rotating %s: %v", name, err)
		}
		cancel()
		if serial == "" {
			continue
		}
		a.c.h.held(name, serial, at)
		rn := &renewal{name: name, serial: serial, at: at, visible: time.Now(), reached: map[string]time.Duration{}}
		a.c.h.mu.Lock()
		a.c.h.renewals = append(a.c.h.renewals, rn)
		a.c.h.mu.Unlock()
		for _, n := range a.c.nodes {
			a.watchers.Add(1)
			go func() { defer a.watchers.Done(); a.watch(rn, n) }()
		}
	}
}

// watch reads rn's name on n every half second until n serves rn's
// serial, or a bound well past C6's.
func (a *chaosActors) watch(rn *renewal, n *raftNode) {
	deadline := rn.at.Add(4*chaosInterval + 60*time.Second)
	d := time.Duration(-1)
	for time.Now().Before(deadline) {
		op := a.read("watch", n, rn.name, false)
		if op.serial == rn.serial {
			d = op.end.Sub(rn.at)
			break
		}
		sleepCtx(context.Background(), 500*time.Millisecond)
	}
	a.c.h.mu.Lock()
	rn.reached[n.id] = d
	a.c.h.mu.Unlock()
}
