package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

// chaosRegressionSeeds are seeds that once found a bug; the short run in
// `make test` replays the first, NHNCERT_CHAOS_SEED picks any other.
// 27001 (100 s): C5, a deposed active node's plugin ran the background
// refresh 25 ms after its Vault was resumed; C7, a killed Vault's plugin
// process still ran 1.5 s later (both fixed). 27001 over 20 minutes: C1,
// a node paused as the active one and resumed 0.3 s after a delete that
// the new active node acknowledged served a certificate from memory
// before Vault stepped it down (fixed: a node confirms it is still the
// active one after a pause, internal/pause); C4, a cold certificate
// "downloaded" twice after NHN was slow: the first was a request the run
// gave up on (a config write re-planned it), which confirmed nothing (the
// checker now counts the files NHN sent whole).
var chaosRegressionSeeds = []uint64{27001}

const (
	chaosInterval   = 10 * time.Second // the config's refresh_interval
	chaosShortTime  = 100 * time.Second
	chaosQuietTail  = 15 * time.Second // clients only, after the last fault
	chaosClientWait = 10 * time.Second
	chaosColdCount  = 20
)

// hotNames are the demo certificates the readers read and the renewal
// actor renews.
var hotNames = []string{"example.com", "*.example.com", "api.example.com", "ed25519.example.com", "example.com (new)", "웹 서버 인증서"}

// TestChaos runs a 3-node raft Vault (raw_storage_endpoint on), the plugin
// and the emulator, on a network private to the run (chaos_net_test.go;
// loopback where it cannot be made); readers on every node (standbys
// forward), a config actor (writes keeping the identity, switches of
// api_version, deletes), a passphrase actor and a renewal actor (renewals,
// deletes and registrations again in NHN) run while the nemesis
// (chaos_nemesis_test.go) kills, pauses, partitions and slows things down.
// Then the checker (chaos_check_test.go) reads the history. NHNCERT_CHAOS_TIME (default
// 100 s, the short run of `make test`) sets how long the faults go on;
// NHNCERT_CHAOS_SEED the seed (printed; it replays the nemesis schedule).
func TestChaos(t *testing.T) {
	requireVault(t)
	total := chaosShortTime
	if v := os.Getenv("NHNCERT_CHAOS_TIME"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "NHNCERT_CHAOS_TIME")
		total = d
	}
	seed := chaosRegressionSeeds[0]
	if v := os.Getenv("NHNCERT_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "NHNCERT_CHAOS_SEED")
		seed = s
	}
	// The run's own network, for partitions.
	net, netErr := newChaosNet()
	emuArgs := []string{"-bulk", strconv.Itoa(chaosColdCount)}
	if netErr != nil {
		t.Logf("chaos: partitions SKIPPED: %v; the nodes run on loopback, the pause stands in for a partition", netErr)
	} else {
		t.Cleanup(net.close)
		emuArgs = append(emuArgs, "-listen", net.hostIP()+":0", "-allow-non-loopback") // the run's private bridge
		t.Logf("chaos: the nodes run in network namespaces of their own (API bridge %s, cluster bridge %s); partitions cut a node's cluster link", net.apiBr, net.clusterBr)
	}
	// Drawn for twice total: kills and plugin kills take less than their
	// drawn length, and the run stops at total anyway.
	schedule := nemesisSchedule(seed, 2*total, net != nil)
	t.Logf("chaos: seed %d (NHNCERT_CHAOS_SEED=%d replays the schedule), %s of faults: %v", seed, seed, total, schedule)

	dir := t.TempDir()
	em, err := startEmulator(dir, emuArgs...)
	if em != nil && em.proc != nil {
		t.Cleanup(func() { _ = em.proc.stop() })
	}
	require.NoError(t, err, "starting the emulator")
	c := &chaosCluster{em: em, h: newHistory(), log: t.Logf, paused: map[string]bool{}, fast: map[string]*api.Client{}, net: net}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			_ = syscallCont(n)
			if t.Failed() {
				t.Logf("---- %s: %s (tail) ----\n%s", n.id, n.logPath, tail(n.logPath, 40))
			}
			_ = n.stop()
		}
		keepChaosLogs(t, c, seed)
	})
	require.NoError(t, startChaosCluster(t, c, dir))
	n1 := c.nodes[0]
	e := &env{dir: dir, vault: n1.vaultServer, emu: em}
	require.NoError(t, e.mountPlugin())
	require.NoError(t, e.configure(mount, "refresh_interval="+chaosInterval.String()))

	certs, err := em.admin.Certs(ctxT(t))
	require.NoError(t, err)
	var cold []string
	for _, ct := range certs {
		if ct.Serial != "" {
			c.h.held(ct.Name, ct.Serial, time.Time{})
		}
		if strings.HasPrefix(ct.Name, "bulk") {
			cold = append(cold, ct.Name)
			c.h.coldNames[ct.Name] = true
		}
	}
	require.Len(t, cold, chaosColdCount)

	a := &chaosActors{c: c, token: n1.rootToken, cold: cold, http: &http.Client{Timeout: chaosClientWait}, end: time.Now().Add(total)}
	a.readCold("setup")
	// The serials of the cold certificates exist once first downloaded.
	certs, err = em.admin.Certs(ctxT(t))
	require.NoError(t, err)
	for _, ct := range certs {
		if c.h.coldNames[ct.Name] && ct.Serial != "" {
			c.h.held(ct.Name, ct.Serial, time.Time{})
		}
	}
	// The clients go on chaosQuietTail after the last fault.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nemCtx, nemCancel := context.WithTimeout(ctx, total)
	defer nemCancel()
	var wg sync.WaitGroup
	monCtx, monCancel := context.WithCancel(context.Background())
	var monWG sync.WaitGroup
	c.monitor(monCtx, cold, &monWG)
	for i, n := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); a.reader(ctx, n, seed+uint64(i)) }()
	}
	wg.Add(3)
	go func() { defer wg.Done(); a.configActor(ctx, seed+10) }()
	go func() { defer wg.Done(); a.passphraseActor(ctx, seed+11) }()
	go func() { defer wg.Done(); a.renewalActor(ctx, seed+12) }()
	var nemErr error
	for _, s := range schedule {
		if sleepCtx(nemCtx, s.gap); nemCtx.Err() != nil {
			break
		}
		if nemErr = c.run(nemCtx, s); nemErr != nil {
			break
		}
	}
	sleepCtx(ctx, chaosQuietTail)
	cancel()
	wg.Wait()
	a.watchers.Wait()
	require.NoError(t, nemErr, "nemesis")

	// The end: NHN back, every node up, the config deleted; the checker
	// looks once raft caught up.
	require.NoError(t, em.admin.ClearFault(ctxT(t)))
	require.NoError(t, em.admin.SetLatency(ctxT(t), 0))
	if net != nil {
		require.NoError(t, net.healAll())
	}
	for _, n := range c.nodes {
		require.NoError(t, n.waitStandbyOrActive(), "%s after the faults", n.id)
	}
	require.True(t, a.deleteConfig(context.Background()), "the final config delete")
	sleepCtx(context.Background(), 5*time.Second)
	monCancel()
	monWG.Wait()
	c.h.mu.Lock()
	c.h.deleted[len(c.h.deleted)-1].to = time.Now()
	c.h.mu.Unlock()

	var violations []string
	if act := c.active(); act != nil {
		violations = append(violations, rawScan(t, act, n1.rootToken)...)
	} else {
		violations = append(violations, "no active node at the end")
	}
	var runs []refreshRun
	for _, n := range c.nodes {
		runs = append(runs, refreshRuns(n.id, n.logPath)...)
	}
	v, summary := c.h.check(chaosInterval, runs)
	violations = append(violations, v...)
	ops, served := len(c.h.ops), 0
	for _, o := range c.h.ops {
		if o.served() {
			served++
		}
	}
	t.Logf("chaos seed %d: %d operations (%d certificates served), %d nemesis events, %d renewals, %d config-deleted windows, %d background runs",
		seed, ops, served, len(c.h.nemeses), len(c.h.renewals), len(c.h.deleted), len(runs))
	for _, s := range summary {
		t.Log(s)
	}
	for _, s := range violations {
		t.Error(s)
	}
	if len(violations) > 0 {
		t.Logf("replay: NHNCERT_CHAOS_SEED=%d NHNCERT_CHAOS_TIME=%s", seed, total)
	}
}

// startChaosCluster starts three raft nodes with raw_storage_endpoint
// and debug logs (the checker reads the refresh runs from them).
func startChaosCluster(t *testing.T, c *chaosCluster, dir string) error {
	for i, id := range []string{"node1", "node2", "node3"} {
		n, err := newRaftNode(dir, id)
		if err != nil {
			return err
		}
		n.extraArgs = []string{"-log-level=debug"}
		if c.net != nil {
			if n.apiHost, n.clusterHost, n.wrap, err = c.net.addNode(id, i); err != nil {
				return err
			}
		}
		c.nodes = append(c.nodes, n)
	}
	pick := func(n *raftNode) func() error {
		return func() error {
			if err := n.pickRaftPorts(); err != nil {
				return err
			}
			f, err := os.OpenFile(n.configPath, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteString("raw_storage_endpoint = true\n")
			return errors.Join(err, f.Close())
		}
	}
	n1 := c.nodes[0]
	if err := n1.startOnFreePorts(pick(n1)); err != nil {
		return err
	}
	if err := n1.initAndUnseal(); err != nil {
		return err
	}
	if _, err := n1.client.Logical().Write("sys/storage/raft/autopilot/configuration", map[string]any{"server_stabilization_time": "2s"}); err != nil {
		return err
	}
	for _, n := range c.nodes[1:] {
		if err := n.startOnFreePorts(pick(n)); err != nil {
			return err
		}
		n.unsealKey, n.rootToken = n1.unsealKey, n1.rootToken
		n.client.SetToken(n.rootToken)
		if r := n.cli("", "", "operator", "raft", "join", n1.addr); r.code != 0 {
			return fmt.Errorf("%s: raft join: %s", n.id, r)
		}
		if _, err := n.client.Sys().Unseal(n.unsealKey); err != nil {
			return err
		}
		if err := n.waitStandby(); err != nil {
			return err
		}
	}
	for _, n := range c.nodes {
		n.rootToken = n1.rootToken
		cl, err := fastClient(n)
		if err != nil {
			return err
		}
		c.fast[n.id] = cl
	}
	return waitVoters(n1.client, []string{"node1", "node2", "node3"})
}

// waitStandbyOrActive waits until the node is unsealed.
func (n *raftNode) waitStandbyOrActive() error {
	return poll(haTimeout, n.id+" to be unsealed", n.proc, func() (bool, error) {
		h, err := n.client.Sys().Health()
		if err != nil {
			return false, err
		}
		return h.Initialized && !h.Sealed, fmt.Errorf("health: %+v", h)
	})
}

// rawScan lists every storage key of the mount through sys/raw and
// reports a cached copy or the config left after the last delete (C1).
func rawScan(t *testing.T, n *raftNode, token string) []string {
	m, err := n.client.Logical().Read("sys/mounts/" + mount)
	require.NoError(t, err, "sys/mounts/%s", mount)
	require.NotNil(t, m)
	uuid, _ := m.Data["uuid"].(string)
	require.NotEmpty(t, uuid, "sys/mounts/%s: %v", mount, m.Data)
	var bad []string
	var walk func(prefix string)
	walk = func(prefix string) {
		s, err := n.client.Logical().List("sys/raw/logical/" + uuid + "/" + prefix)
		require.NoError(t, err, "LIST sys/raw/logical/%s/%s", uuid, prefix)
		if s == nil {
			return
		}
		keys, _ := s.Data["keys"].([]any)
		for _, k := range keys {
			key := prefix + fmt.Sprint(k)
			switch {
			case strings.HasSuffix(key, "/"):
				walk(key)
			case key == "config" || strings.HasPrefix(key, "cache/"):
				bad = append(bad, fmt.Sprintf("C1: storage key %q of the mount is left after the last config delete", key))
			}
		}
	}
	walk("")
	t.Logf("sys/raw scan of logical/%s/ done: %d keys that should be gone", uuid, len(bad))
	return bad
}

// syscallCont resumes a node the test may have left paused.
func syscallCont(n *raftNode) error {
	if n.proc == nil || n.proc.exited() {
		return nil
	}
	return syscall.Kill(n.proc.cmd.Process.Pid, syscall.SIGCONT)
}

// keepChaosLogs copies the nodes' and the emulator's logs to
// $NHNCERT_CHAOS_LOGS/seed-<seed>-<time>/ (make chaos sets it), passed or
// failed: the temporary directory goes with the test.
func keepChaosLogs(t *testing.T, c *chaosCluster, seed uint64) {
	root := os.Getenv("NHNCERT_CHAOS_LOGS")
	if root == "" {
		return
	}
	dst := filepath.Join(root, fmt.Sprintf("seed-%d-%s", seed, time.Now().UTC().Format("20060102T150405Z")))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Logf("chaos logs: %v", err)
		return
	}
	logs := map[string]string{}
	for _, n := range c.nodes {
		logs[n.id+".log"] = n.logPath
	}
	if c.em != nil && c.em.proc != nil {
		logs["emulator.log"] = c.em.proc.logPath
	}
	for name, src := range logs {
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, name), b, 0o644)
		}
		if err != nil {
			t.Logf("chaos logs: %s: %v", name, err)
		}
	}
	t.Logf("chaos logs kept in %s", dst)
}
