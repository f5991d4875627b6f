package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// haTimeout bounds each wait of the HA test (an election, a join, a
// promotion to voter).
const haTimeout = 60 * time.Second

// raftNode is one Vault server of a raft cluster.
type raftNode struct {
	*vaultServer
	id          string
	clusterPort int
	// apiHost and clusterHost are the node's addresses in a network
	// namespace of its own (the chaos run's, chaos_net_linux_test.go);
	// empty: loopback, on free ports.
	apiHost, clusterHost string
}

// newRaftNode prepares node id in dir/id (plugin directory with the
// plugin) without starting it.
func newRaftNode(dir, id string) (*raftNode, error) {
	v, err := newVaultServer(filepath.Join(dir, id), realVault)
	if err != nil {
		return nil, err
	}
	return &raftNode{vaultServer: v, id: id}, nil
}

// pickRaftPorts takes two free loopback ports (API and cluster) and
// writes the node's HCL config (raft storage) for them.
func (n *raftNode) pickRaftPorts() error {
	apiHost, clusterHost := "127.0.0.1", "127.0.0.1"
	if n.apiHost != "" {
		// A namespace of its own: the ports are the node's.
		apiHost, clusterHost, n.port, n.clusterPort = n.apiHost, n.clusterHost, 8200, 8201
	} else {
		var err error
		if n.port, err = freePort(); err != nil {
			return err
		}
		if n.clusterPort, err = freePort(); err != nil {
			return err
		}
	}
	n.addr = fmt.Sprintf("http://%s:%d", apiHost, n.port)
	raftDir := filepath.Join(n.dir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return err
	}
	n.configPath = filepath.Join(n.dir, "vault.hcl")
	cfg := fmt.Sprintf(`# nhncert HA test: one node of a 3-node raft cluster on loopback
storage "raft" {
  path                   = %q
  node_id                = %q
  performance_multiplier = 1
}

listener "tcp" {
  address         = "%s:%d"
  cluster_address = "%s:%d"
  tls_disable     = true
}

api_addr         = %q
cluster_addr     = "https://%s:%d"
plugin_directory = %q
disable_mlock    = true
ui               = false
log_level        = "info"
`, raftDir, n.id, apiHost, n.port, clusterHost, n.clusterPort, n.addr, clusterHost, n.clusterPort, n.pluginDir)
	return os.WriteFile(n.configPath, []byte(cfg), 0o600)
}

// startFirst starts the node for the first time, on free ports. Only
// then may it move to other ports: once it joined, its address is in the
// raft configuration, and a restart (start) keeps it.
func (n *raftNode) startFirst() error {
	return n.startOnFreePorts(n.pickRaftPorts)
}

// waitStandby waits until the node is unsealed and a standby.
func (n *raftNode) waitStandby() error {
	return poll(haTimeout, n.id+" to be an unsealed standby", n.proc, func() (bool, error) {
		h, err := n.client.Sys().Health()
		if err != nil {
			return false, err
		}
		return h.Initialized && !h.Sealed && h.Standby, fmt.Errorf("health: %+v", h)
	})
}

// raftServer is one entry of sys/storage/raft/configuration.
type raftServer struct {
	NodeID  string `json:"node_id"`
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	Voter   bool   `json:"voter"`
}

func raftServers(c *api.Client) ([]raftServer, error) {
	s, err := c.Logical().Read("sys/storage/raft/configuration")
	if err != nil || s == nil {
		return nil, fmt.Errorf("sys/storage/raft/configuration: %v (secret %v)", err, s)
	}
	b, err := json.Marshal(s.Data["config"])
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Servers []raftServer `json:"servers"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, err
	}
	return cfg.Servers, nil
}

// waitVoters waits until the raft configuration, as c's node sees it, has
// want voters, every node of ids among them.
func waitVoters(c *api.Client, ids []string) error {
	return poll(haTimeout, fmt.Sprintf("%d raft voters", len(ids)), nil, func() (bool, error) {
		servers, err := raftServers(c)
		if err != nil {
			return false, err
		}
		voters := map[string]bool{}
		for _, s := range servers {
			if s.Voter {
				voters[s.NodeID] = true
			}
		}
		for _, id := range ids {
			if !voters[id] {
				return false, fmt.Errorf("servers %+v", servers)
			}
		}
		return len(servers) == len(ids), fmt.Errorf("servers %+v", servers)
	})
}

// TestHA runs three Vault servers with integrated storage (raft) on
// loopback, the plugin registered once (the catalog is replicated) and in
// every node's plugin_directory:
//
//  1. node1 is initialised and unsealed; node2 and node3 join it
//     (vault operator raft join) and are unsealed with the same key; the
//     test waits until all three are voters.
//  2. The config is written on the leader; a read sent to a standby is
//     forwarded and downloads once; a read on the other standby comes from
//     the cache; a config update sent to a standby is forwarded too.
//  3. The leader is stopped (SIGTERM); the test waits for a new leader.
//  4. With NHN down, the new leader serves the cached certificate from
//     raft storage (no warning: within cache_ttl), refresh=true serves it
//     with a stale warning, an uncached name fails with 502; the other
//     node serves it too (forwarded).
//  5. The old leader is started again and unsealed: it rejoins (3 voters)
//     and serves the certificate (forwarded).
func TestHA(t *testing.T) {
	requireVault(t)
	started := time.Now()
	dir := t.TempDir()
	em, err := startEmulator(dir)
	if em != nil && em.proc != nil {
		t.Cleanup(func() { _ = em.proc.stop() })
	}
	require.NoError(t, err, "starting the emulator")
	var nodes []*raftNode
	t.Cleanup(func() {
		for _, n := range nodes {
			if t.Failed() {
				t.Logf("---- %s: %s (tail) ----\n%s", n.id, n.logPath, tail(n.logPath, 60))
			}
			_ = n.stop()
		}
	})
	step := func(what string, since time.Time) {
		t.Logf("%-75s %6s (at %s)", what, time.Since(since).Round(10*time.Millisecond), time.Since(started).Round(100*time.Millisecond))
	}

	// 1. The cluster.
	t0 := time.Now()
	for _, id := range []string{"node1", "node2", "node3"} {
		n, err := newRaftNode(dir, id)
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	require.NoError(t, n1.startFirst())
	require.NoError(t, n1.initAndUnseal())
	// Joining nodes are promoted to voters once stable for this long
	// (default 10s).
	_, err = n1.client.Logical().Write("sys/storage/raft/autopilot/configuration",
		map[string]any{"server_stabilization_time": "2s"})
	require.NoError(t, err, "autopilot configuration")
	for _, n := range []*raftNode{n2, n3} {
		require.NoError(t, n.startFirst())
		n.unsealKey, n.rootToken = n1.unsealKey, n1.rootToken
		n.client.SetToken(n.rootToken)
		r := n.cli("", "", "operator", "raft", "join", n1.addr)
		require.Equal(t, 0, r.code, "%s: %s", n.id, r)
		_, err := n.client.Sys().Unseal(n.unsealKey)
		require.NoError(t, err, "unsealing %s", n.id)
		require.NoError(t, n.waitStandby())
	}
	require.NoError(t, waitVoters(n1.client, []string{"node1", "node2", "node3"}))
	step("3-node raft cluster up: node1 active, node2 and node3 voting standbys", t0)

	// 2. Plugin, config on the leader, reads on the standbys.
	t0 = time.Now()
	e := &env{dir: dir, vault: n1.vaultServer, emu: em}
	require.NoError(t, e.mountPlugin())
	const name = "example.com"
	readOn := func(n *raftNode, query map[string][]string) (*api.Secret, error) {
		return n.client.Logical().ReadWithData(mount+"/certs/"+name, query)
	}
	downloads := func() int64 { return em.stats(t).FileCallsByName[name] }
	s, err := readOn(n2, nil)
	require.NoError(t, err, "read on standby node2 (forwarded)")
	require.NotNil(t, s, "read on standby node2 (forwarded)")
	serial := str(t, s.Data, "serial_number")
	checkPEMRead(t, s, name, "rsa", 1)
	s, err = readOn(n3, nil)
	require.NoError(t, err, "read on standby node3")
	require.NotNil(t, s, "read on standby node3")
	require.Equal(t, serial, s.Data["serial_number"], "read on standby node3: %v", s)
	require.Empty(t, s.Warnings, "read on standby node3: %v", s)
	assert.Equal(t, int64(1), downloads(), "reads on two standbys: downloads, want 1 (forwarded to the active node, then cached)")
	r := n3.cli(n3.rootToken, "", "write", mount+"/config", "cache_ttl=2h")
	require.Equal(t, 0, r.code, "config update sent to standby node3: %s", r)
	c, err := n1.client.Logical().Read(mount + "/config")
	if assert.NoError(t, err, "config update sent to a standby, read on the leader") && assert.NotNil(t, c, "config update sent to a standby, read on the leader") {
		assert.Equal(t, "7200", fmt.Sprint(c.Data["cache_ttl"]), "config update sent to a standby, read on the leader: %v", c)
	}
	step("config written on the leader; reads on both standbys forwarded, 1 download", t0)

	// 3. Stop the leader.
	t0 = time.Now()
	if err := n1.stop(); err != nil {
		t.Logf("node1 exit after SIGTERM: %v", err)
	}
	var leader, other *raftNode
	err = poll(haTimeout, "a new leader among node2 and node3", nil, func() (bool, error) {
		for _, pair := range [][2]*raftNode{{n2, n3}, {n3, n2}} {
			l, err := pair[0].client.Sys().Leader()
			if err != nil {
				return false, err
			}
			if l.IsSelf {
				o, err := pair[1].client.Sys().Leader()
				if err != nil {
					return false, err
				}
				if o.LeaderAddress == pair[0].addr {
					leader, other = pair[0], pair[1]
					return true, nil
				}
				return false, fmt.Errorf("%s leads, %s follows %s", pair[0].id, pair[1].id, o.LeaderAddress)
			}
		}
		return false, fmt.Errorf("no leader yet")
	})
	require.NoError(t, err)
	step(fmt.Sprintf("node1 stopped; %s is the new leader, %s follows it", leader.id, other.id), t0)

	// 4. NHN down: the new leader serves the cached certificate.
	t0 = time.Now()
	require.NoError(t, em.admin.SetFault(ctxT(t), emulator.Fault{Mode: emulator.FaultDown}))
	before := downloads()
	for _, n := range []*raftNode{leader, other} {
		start := time.Now()
		s, err := readOn(n, nil)
		msg := fmt.Sprintf("NHN down, read on %s: want the cached serial %s without a warning (within cache_ttl)", n.id, serial)
		if readAnswered(t, s, err, msg) {
			sameSerial := assert.Equal(t, serial, s.Data["serial_number"], msg)
			noWarning := assert.Empty(t, s.Warnings, msg)
			if sameSerial && noWarning {
				t.Logf("NHN down, read on %s: HTTP 200, the cached serial, no warning, in %s", n.id, time.Since(start).Round(time.Millisecond))
			}
		}
	}
	assert.Zero(t, downloads()-before, "reads within cache_ttl on the new leader asked NHN")
	s, err = readOn(leader, map[string][]string{"refresh": {"true"}})
	msg := "NHN down, refresh=true on the new leader: want the cached copy with a stale warning"
	if readAnswered(t, s, err, msg) {
		sameSerial := assert.Equal(t, serial, s.Data["serial_number"], msg)
		stale := assert.Contains(t, strings.Join(s.Warnings, " "), "may be stale", msg)
		if sameSerial && stale {
			t.Logf("NHN down, refresh=true on %s: HTTP 200 with warning %q", leader.id, s.Warnings)
		}
	}
	rr := mustRaw(t, leader.vaultServer, leader.rootToken, "GET", mount+"/certs/api.example.com", nil, nil)
	assert.Equal(t, 502, rr.status, "NHN down, uncached name on the new leader: %s; want 502 unreachable", rr)
	assert.Contains(t, rr.says(), "unreachable", "NHN down, uncached name on the new leader: %s; want 502 unreachable", rr)
	step("NHN down: the new leader serves the cached certificate from raft storage", t0)

	// 5. The old leader rejoins.
	t0 = time.Now()
	require.NoError(t, n1.start())
	_, err = n1.client.Sys().Unseal(n1.unsealKey)
	require.NoError(t, err, "unsealing node1 again")
	require.NoError(t, n1.waitStandby())
	require.NoError(t, waitVoters(leader.client, []string{"node1", "node2", "node3"}))
	// node1 follows the new leader (request forwarding set up).
	err = poll(haTimeout, "node1 to follow "+leader.id, n1.proc, func() (bool, error) {
		l, err := n1.client.Sys().Leader()
		if err != nil {
			return false, err
		}
		return !l.IsSelf && l.LeaderAddress == leader.addr, fmt.Errorf("sys/leader: %+v", l)
	})
	require.NoError(t, err)
	peers := mustCLI(t, leader.vaultServer, "operator", "raft", "list-peers")
	t.Logf("vault operator raft list-peers:\n%s", peers)
	var listed struct {
		Data struct {
			Config struct {
				Servers []raftServer `json:"servers"`
			} `json:"config"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, leader.vaultServer, "operator", "raft", "list-peers", "-format=json")), &listed))
	voters := 0
	for _, s := range listed.Data.Config.Servers {
		if s.Voter {
			voters++
		}
	}
	assert.Len(t, listed.Data.Config.Servers, 3, "list-peers: want 3 voters")
	assert.Equal(t, 3, voters, "list-peers: %+v; want 3 voters", listed.Data.Config.Servers)
	s, err = readOn(n1, nil)
	if readAnswered(t, s, err, "read on the rejoined node1 (forwarded)") {
		assert.Equal(t, serial, s.Data["serial_number"], "read on the rejoined node1 (forwarded)")
	}
	require.NoError(t, em.admin.ClearFault(ctxT(t)))
	s, err = readOn(n1, map[string][]string{"refresh": {"true"}})
	if readAnswered(t, s, err, "NHN back, refresh=true on node1 (forwarded)") {
		assert.Empty(t, s.Warnings, "NHN back, refresh=true on node1 (forwarded)")
	}
	step("node1 restarted and unsealed: rejoined as a voting standby, serves reads", t0)

	for _, n := range nodes {
		// Not assert.NotContains: it would print the log and the secret.
		assert.False(t, strings.Contains(tail(n.logPath, 1<<30), em.secret), "%s's log holds the Secret Access Key", n.id)
	}
	t.Logf("TestHA took %s", time.Since(started).Round(100*time.Millisecond))
}

// readAnswered asserts that a read answered (no error, a secret) and
// reports whether it did.
func readAnswered(t *testing.T, s *api.Secret, err error, msgAndArgs ...any) bool {
	t.Helper()
	return assert.NoError(t, err, msgAndArgs...) && assert.NotNil(t, s, msgAndArgs...)
}
