package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// The nemesis: faults drawn from the seed, one at a time, with a quiet gap
// between them. The schedule is fixed by the seed (kinds, durations, gaps,
// which standby); which node is active when a fault starts is the
// cluster's, and the fault then targets it.

// nemesisKinds are the faults every run has. Partitions
// (partitionKinds) are drawn besides them, from a stream of their own,
// where the run has its own network (chaos_net_test.go): a seed's other
// faults stay as they were.
var nemesisKinds = []string{"kill-active", "pause-active", "kill-plugin", "nhn-down", "nhn-slow", "lossy-list", "pause-standby"}

var partitionKinds = []string{"partition-active", "partition-standby"}

type nemesisStep struct {
	kind   string
	gap    time.Duration // quiet time before it
	length time.Duration // how long it lasts (down, slow, pause)
	pick   int           // which standby, modulo their number
}

// nemesisSchedule draws the faults for total: every kind once first (in
// a seeded order, with short gaps; even when that outlasts total), then
// seeded draws.
//
// With partitions, one of each kind comes early (after the first and the
// third fault), then one after a quarter of the others, from their own
// stream.
func nemesisSchedule(seed uint64, total time.Duration, partitions bool) []nemesisStep {
	out := baseSchedule(seed, total)
	if !partitions {
		return out
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x70617274))
	var with []nemesisStep
	for i, s := range out {
		with = append(with, s)
		kind := ""
		switch {
		case i == 0:
			kind = partitionKinds[0]
		case i == 2:
			kind = partitionKinds[1]
		case i > 2 && rng.IntN(4) == 0:
			kind = partitionKinds[rng.IntN(len(partitionKinds))]
		}
		if kind != "" {
			with = append(with, nemesisStep{kind: kind, gap: time.Duration(4+rng.IntN(8)) * time.Second,
				length: time.Duration(5+rng.IntN(6)) * time.Second, pick: rng.IntN(1 << 16)})
		}
	}
	return with
}

func baseSchedule(seed uint64, total time.Duration) []nemesisStep {
	rng := rand.New(rand.NewPCG(seed, seed^0x6e656d65))
	var out []nemesisStep
	var used time.Duration
	order := rng.Perm(len(nemesisKinds))
	for i := 0; used < total || i < len(order); i++ {
		kind := nemesisKinds[rng.IntN(len(nemesisKinds))]
		if i < len(order) {
			kind = nemesisKinds[order[i]]
		}
		s := nemesisStep{kind: kind, gap: time.Duration(4+rng.IntN(8)) * time.Second,
			length: time.Duration(5+rng.IntN(6)) * time.Second, pick: rng.IntN(1 << 16)}
		if i < len(order) {
			s.gap = time.Duration(2+rng.IntN(3)) * time.Second // every kind early, even in the short run
		}
		used += s.gap + s.length // more steps than fit: the run stops at its end
		out = append(out, s)
	}
	return out
}

func (s nemesisStep) String() string {
	return fmt.Sprintf("%s(gap %s, %s, pick %d)", s.kind, s.gap, s.length, s.pick)
}

// chaosCluster is the cluster the nemesis and the actors work on.
type chaosCluster struct {
	nodes []*raftNode
	em    *emu
	h     *history
	log   func(format string, args ...any)

	mu     sync.Mutex
	paused map[string]bool
	// fast are per-node clients with a short timeout for the monitor.
	fast map[string]*api.Client
	// net is the run's own network (nil: loopback, no partitions).
	net *chaosNet
}

// active is the node that says it is active, or nil.
func (c *chaosCluster) active() *raftNode {
	for _, n := range c.nodes {
		c.mu.Lock()
		p := c.paused[n.id]
		cl := c.fast[n.id]
		c.mu.Unlock()
		if p || n.proc == nil || n.proc.exited() {
			continue
		}
		if l, err := cl.Sys().Leader(); err == nil && l.IsSelf {
			return n
		}
	}
	return nil
}

// waitActiveOther waits (bounded) for a node other than old to be active.
func (c *chaosCluster) waitActiveOther(old *raftNode) (*raftNode, error) {
	var got *raftNode
	err := poll(haTimeout, "a new active node", nil, func() (bool, error) {
		got = c.active()
		return got != nil && got != old, fmt.Errorf("active: %v", got)
	})
	return got, err
}

// pluginPIDs lists the plugin processes whose parent is the node's Vault.
func pluginPIDs(vaultPID int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(st[strings.LastIndexByte(string(st), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(vaultPID) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmd), pluginName) {
			out = append(out, pid)
		}
	}
	return out
}

// procAlive reports whether pid runs (exists and is no zombie).
func procAlive(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	rest := string(st[strings.LastIndexByte(string(st), ')')+1:])
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] != "Z"
}

// procMem returns a process's resident memory (bytes) and threads.
func procMem(pid int) (rss, threads int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			rss = kb << 10
		}
		if len(f) >= 2 && f[0] == "Threads:" {
			threads, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return rss, threads, true
}

// run executes one step and records it.
func (c *chaosCluster) run(ctx context.Context, s nemesisStep) error {
	ev := &nemesisEvent{kind: s.kind, start: time.Now()}
	defer func() {
		if ev.end.IsZero() {
			ev.end = time.Now()
		}
		c.h.mu.Lock()
		c.h.nemeses = append(c.h.nemeses, ev)
		c.h.mu.Unlock()
		c.log("nemesis %s on %s: %s..%s %s", s, ev.node, ev.start.Format(tsFmt), ev.end.Format(tsFmt), ev.note)
	}()
	admin := c.em.admin
	outage := func(set func() error) error {
		if err := set(); err != nil {
			return err
		}
		sleepCtx(ctx, s.length)
		ev.end = time.Now()
		c.h.mu.Lock()
		c.h.outages = append(c.h.outages, configWindow{ev.start, ev.end})
		c.h.mu.Unlock()
		_ = admin.SetLatency(context.Background(), 0)
		return admin.ClearFault(context.Background())
	}
	switch s.kind {
	case "nhn-down":
		return outage(func() error { return admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}) })
	case "nhn-slow":
		return outage(func() error { return admin.SetLatency(ctx, 3*time.Second) })
	case "lossy-list":
		return outage(func() error {
			return admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultFlaky, Target: emulator.TargetList, Count: 3})
		})
	case "kill-plugin":
		// The active node's: standbys run no plugin process (they
		// forward every request).
		n := c.active()
		if n == nil {
			ev.note = "no active node"
			return nil
		}
		ev.node = n.id
		pids := pluginPIDs(n.proc.cmd.Process.Pid)
		if len(pids) == 0 {
			ev.note = "no plugin process running"
			return nil
		}
		pid := pids[0]
		ev.note = fmt.Sprintf("pid %d", pid)
		return syscall.Kill(pid, syscall.SIGKILL)
	case "pause-standby", "partition-standby":
		act := c.active()
		var standbys []*raftNode
		for _, n := range c.nodes {
			if n != act {
				standbys = append(standbys, n)
			}
		}
		n := standbys[s.pick%len(standbys)]
		ev.node = n.id
		if s.kind == "partition-standby" {
			return c.partition(n, s.length, nil)
		}
		return c.pause(ctx, n, s.length, nil)
	}
	old := c.active()
	if old == nil {
		ev.note = "no active node to target"
		return nil
	}
	ev.node = old.id
	switch s.kind {
	case "kill-active":
		pid := old.proc.cmd.Process.Pid
		plugins := pluginPIDs(pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return err
		}
		killed := time.Now()
		nu, err := c.waitActiveOther(old)
		if err != nil {
			return err
		}
		ev.elected = time.Since(killed)
		ev.note = "new active " + nu.id
		c.checkOrphans(old.id, plugins, killed)
		<-old.proc.done
		if err := old.start(); err != nil {
			return fmt.Errorf("restarting %s: %w", old.id, err)
		}
		if _, err := old.client.Sys().Unseal(old.unsealKey); err != nil {
			return fmt.Errorf("unsealing %s: %w", old.id, err)
		}
		ev.end = time.Now()
		return old.waitStandby()
	case "pause-active":
		return c.pause(ctx, old, s.length, ev)
	case "partition-active":
		return c.partition(old, s.length, ev)
	}
	return fmt.Errorf("unknown nemesis %q", s.kind)
}

// pause stops n's Vault (SIGSTOP; its plugin processes go on) for at
// least length and, when n was active (ev set), until another node is
// active; then resumes it.
func (c *chaosCluster) pause(ctx context.Context, n *raftNode, length time.Duration, ev *nemesisEvent) error {
	c.mu.Lock()
	c.paused[n.id] = true
	c.mu.Unlock()
	pid := n.proc.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	stopped := time.Now()
	var err error
	if ev != nil {
		var nu *raftNode
		nu, err = c.waitActiveOther(n)
		ev.elected = time.Since(stopped)
		if nu != nil {
			ev.note = "new active " + nu.id
		}
	}
	sleepCtx(context.Background(), time.Until(stopped.Add(length)))
	if kerr := syscall.Kill(pid, syscall.SIGCONT); kerr != nil && err == nil {
		err = kerr
	}
	c.mu.Lock()
	c.paused[n.id] = false
	c.mu.Unlock()
	return err
}

// partition cuts n's cluster link (it still answers clients and reaches
// NHN) for at least length and, when n was active (ev set), until another
// node is active; then mends it and waits for n to be unsealed again.
func (c *chaosCluster) partition(n *raftNode, length time.Duration, ev *nemesisEvent) error {
	if c.net == nil {
		return fmt.Errorf("partition of %s without the run's own network", n.id)
	}
	if err := c.net.partition(n.id); err != nil {
		return err
	}
	cut := time.Now()
	var err error
	if ev != nil {
		var nu *raftNode
		nu, err = c.waitActiveOther(n)
		ev.elected = time.Since(cut)
		if nu != nil {
			ev.note = "new active " + nu.id
		}
	}
	sleepCtx(context.Background(), time.Until(cut.Add(length)))
	if herr := c.net.heal(n.id); herr != nil && err == nil {
		err = herr
	}
	if ev != nil {
		ev.end = time.Now()
	}
	if werr := n.waitStandbyOrActive(); werr != nil && err == nil {
		err = werr
	}
	return err
}

// checkOrphans records the plugin processes of a killed Vault that are
// still running orphanBound after the kill, then kills them.
func (c *chaosCluster) checkOrphans(node string, pids []int, killed time.Time) {
	go func() {
		sleepCtx(context.Background(), time.Until(killed.Add(orphanBound)))
		for _, pid := range pids {
			if procAlive(pid) {
				c.h.mu.Lock()
				c.h.orphans = append(c.h.orphans, fmt.Sprintf("plugin pid %d of %s's killed Vault still runs %s after the kill", pid, node, orphanBound))
				c.h.mu.Unlock()
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}()
}

// monitor samples, until ctx ends: every node's sys/leader (250 ms), the
// emulator's counters (1 s), the plugin processes' memory (2 s).
func (c *chaosCluster) monitor(ctx context.Context, cold []string, wg *sync.WaitGroup) {
	for _, n := range c.nodes {
		wg.Add(1)
		go func(n *raftNode) {
			defer wg.Done()
			for ctx.Err() == nil {
				c.mu.Lock()
				cl, paused := c.fast[n.id], c.paused[n.id]
				c.mu.Unlock()
				o := leaderObs{at: time.Now(), node: n.id}
				if !paused {
					if l, err := cl.Sys().Leader(); err == nil {
						o.ok, o.isSelf = true, l.IsSelf
					}
				}
				c.h.mu.Lock()
				c.h.leaders = append(c.h.leaders, o)
				c.h.mu.Unlock()
				sleepCtx(ctx, 250*time.Millisecond)
			}
		}(n)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			c.sampleStats(cold)
			if i%2 == 0 {
				c.sampleMem()
			}
			sleepCtx(ctx, time.Second)
		}
	}()
}

func (c *chaosCluster) sampleStats(cold []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.em.admin.Stats(ctx)
	if err != nil {
		return
	}
	s := statsSample{at: time.Now(), calls: st.TokenCalls + st.ListCalls + st.FileCalls,
		filesTotal: st.FileCalls, listCalls: st.ListCalls, tokenIssued: st.TokenIssued, authRejected: st.AuthRejected}
	s.coldByName = map[string]int64{}
	// C4 counts the downloads NHN answered with the file: a request its
	// client gave up on (NHN slow, the run cancelled) confirmed nothing.
	for _, n := range cold {
		s.coldFiles += st.FilesServedByName[n]
		s.coldByName[n] = st.FilesServedByName[n]
	}
	c.h.mu.Lock()
	c.h.stats = append(c.h.stats, s)
	c.h.mu.Unlock()
}

func (c *chaosCluster) sampleMem() {
	for _, n := range c.nodes {
		if n.proc == nil || n.proc.exited() {
			continue
		}
		for _, pid := range pluginPIDs(n.proc.cmd.Process.Pid) {
			rss, th, ok := procMem(pid)
			if !ok {
				continue
			}
			c.h.mu.Lock()
			p := c.h.rss[pid]
			p.node = n.id
			if p.samples == 0 {
				p.first = rss
			}
			p.samples++
			p.rss, p.threads = max(p.rss, rss), max(p.threads, th)
			c.h.rss[pid] = p
			c.h.mu.Unlock()
		}
	}
}

// fastClient is a client of n with a short timeout, for the monitor.
func fastClient(n *raftNode) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = n.addr
	cfg.MaxRetries = 0
	cfg.Timeout = time.Second
	cfg.HttpClient = &http.Client{Timeout: time.Second}
	cl, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	cl.ClearNamespace()
	cl.SetToken(n.rootToken)
	return cl, nil
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
