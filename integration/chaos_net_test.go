package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// The chaos run's own network, for partitions: each node in a network
// namespace of its own with two links, one for its API (the clients, the
// emulator, raft joins) and one for the cluster (raft and request
// forwarding, cluster_addr), each link on a bridge in the test's
// namespace. Cutting a node's cluster link (the bridge side down) is a
// partition: the node still answers clients and reaches NHN, but neither
// reaches nor is reached by the other nodes. Everything is private to this
// machine (no route out; the bridges are the only way between the
// namespaces). It needs root and iproute2 (`ip netns`, veth, bridge); where
// they are missing, the run uses loopback and says partitions are SKIPPED.

// chaosNet is the namespaces, links and bridges of one run.
type chaosNet struct {
	tag              string // in every name: "c" + the test process's pid
	apiBr, clusterBr string
	apiNet, clNet    string // "10.213.<k>", "10.214.<k>"
	mu               sync.Mutex
	nodes            []string          // namespaces made
	clusterLink      map[string]string // node id -> its cluster link's bridge side
	cut              map[string]bool   // node id -> its cluster link is down
}

// newChaosNet makes the two bridges, or says why it cannot.
func newChaosNet() (*chaosNet, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("not root: network namespaces need CAP_NET_ADMIN")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("no `ip` (iproute2) on PATH")
	}
	pid := os.Getpid()
	k := pid%250 + 1
	n := &chaosNet{
		tag: "c" + strconv.Itoa(pid), apiNet: fmt.Sprintf("10.213.%d", k), clNet: fmt.Sprintf("10.214.%d", k),
		clusterLink: map[string]string{}, cut: map[string]bool{},
	}
	n.apiBr, n.clusterBr = "nca"+n.tag, "ncc"+n.tag
	n.sweep()
	for _, br := range []string{n.apiBr, n.clusterBr} {
		if err := n.ip("link", "add", br, "type", "bridge"); err != nil {
			n.close()
			return nil, err
		}
		if err := n.ip("link", "set", br, "up"); err != nil {
			n.close()
			return nil, err
		}
	}
	// The test's namespace is on the API bridge: clients and the emulator.
	if err := n.ip("addr", "add", n.hostIP()+"/24", "dev", n.apiBr); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

// hostIP is the test's address on the API bridge (the emulator listens
// there).
func (n *chaosNet) hostIP() string { return n.apiNet + ".254" }

// addNode makes node i's namespace and its two links, and returns its API
// and cluster addresses and the command that runs a program in it.
func (n *chaosNet) addNode(id string, i int) (apiHost, clusterHost string, wrap []string, err error) {
	ns := "nhncert-" + n.tag + "-" + id
	n.mu.Lock()
	n.nodes = append(n.nodes, ns)
	n.mu.Unlock()
	apiHost, clusterHost = fmt.Sprintf("%s.%d", n.apiNet, i+1), fmt.Sprintf("%s.%d", n.clNet, i+1)
	steps := [][]string{{"netns", "add", ns}, {"-n", ns, "link", "set", "lo", "up"}}
	for _, l := range []struct{ br, side, addr string }{{n.apiBr, "a", apiHost}, {n.clusterBr, "c", clusterHost}} {
		host, peer := fmt.Sprintf("v%s%s%d", l.side, n.tag, i+1), fmt.Sprintf("p%s%s%d", l.side, n.tag, i+1)
		steps = append(steps,
			[]string{"link", "add", host, "type", "veth", "peer", "name", peer},
			[]string{"link", "set", peer, "netns", ns},
			[]string{"link", "set", host, "master", l.br},
			[]string{"link", "set", host, "up"},
			[]string{"-n", ns, "addr", "add", l.addr + "/24", "dev", peer},
			[]string{"-n", ns, "link", "set", peer, "up"})
		if l.side == "c" {
			n.mu.Lock()
			n.clusterLink[id] = host
			n.mu.Unlock()
		}
	}
	for _, s := range steps {
		if err := n.ip(s...); err != nil {
			return "", "", nil, err
		}
	}
	return apiHost, clusterHost, []string{"ip", "netns", "exec", ns}, nil
}

// partition cuts node id's cluster link; heal mends it.
func (n *chaosNet) partition(id string) error { return n.setCut(id, true) }
func (n *chaosNet) heal(id string) error      { return n.setCut(id, false) }

func (n *chaosNet) setCut(id string, cut bool) error {
	n.mu.Lock()
	link := n.clusterLink[id]
	n.cut[id] = cut
	n.mu.Unlock()
	state := "up"
	if cut {
		state = "down"
	}
	return n.ip("link", "set", link, state)
}

// healAll mends every cut link (the end of the faults).
func (n *chaosNet) healAll() error {
	n.mu.Lock()
	var ids []string
	for id, c := range n.cut {
		if c {
			ids = append(ids, id)
		}
	}
	n.mu.Unlock()
	var errs []error
	for _, id := range ids {
		errs = append(errs, n.heal(id))
	}
	return errors.Join(errs...)
}

// close removes the namespaces (their links go with them) and the
// bridges.
func (n *chaosNet) close() {
	n.mu.Lock()
	nodes := append([]string(nil), n.nodes...)
	n.mu.Unlock()
	for _, ns := range nodes {
		_ = n.ip("netns", "del", ns)
	}
	for _, br := range []string{n.apiBr, n.clusterBr} {
		_ = n.ip("link", "del", br)
	}
}

// sweep removes what an earlier run killed before its cleanup left:
// namespaces and bridges named for a test process that is gone.
func (n *chaosNet) sweep() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		ns, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if owner, ok := chaosNetOwner(ns); ok && owner != os.Getpid() && !procAlive(owner) {
			_ = n.ip("netns", "del", ns)
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		br := strings.TrimSuffix(f[1], ":")
		if !strings.HasPrefix(br, "nca") && !strings.HasPrefix(br, "ncc") {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimPrefix(br[3:], "c")); err == nil && pid != os.Getpid() && !procAlive(pid) {
			_ = n.ip("link", "del", br)
		}
	}
}

// chaosNetOwner is the test pid in a namespace's name.
func chaosNetOwner(ns string) (int, bool) {
	rest, ok := strings.CutPrefix(ns, "nhncert-c")
	if !ok {
		return 0, false
	}
	pid, _, _ := strings.Cut(rest, "-")
	n, err := strconv.Atoi(pid)
	return n, err == nil
}

func (n *chaosNet) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
