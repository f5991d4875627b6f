package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The Kubernetes tier runs the real operators against a real API server:
// these parts, each built and cached by scripts/kube.sh at the version its
// wrapper module in scripts/kube/<part> pins, or given by the environment
// (the Makefile's integration target sets every variable).
type kubePart struct {
	name string  // scripts/kube.sh's name
	env  string  // the variable that gives the path
	crds bool    // a CRD directory (scripts/kube.sh crds <name>), not a binary
	path *string // where findKubeParts puts its absolute path (in kubeBins)
}

var kubePartList = []kubePart{
	{name: "etcd", env: "NHNCERT_ETCD_BIN", path: &kubeBins.etcd},
	{name: "kube-apiserver", env: "NHNCERT_KUBE_APISERVER_BIN", path: &kubeBins.apiserver},
	{name: "vso", env: "NHNCERT_VSO_BIN", path: &kubeBins.vso},
	{name: "eso", env: "NHNCERT_ESO_BIN", path: &kubeBins.eso},
	{name: "vso", env: "NHNCERT_VSO_CRDS", crds: true, path: &kubeBins.vsoCRDs},
	{name: "eso", env: "NHNCERT_ESO_CRDS", crds: true, path: &kubeBins.esoCRDs},
}

// kubeBins are the parts' paths, filled by findKubeParts; kubectl is the
// one on PATH.
var kubeBins struct {
	once                         sync.Once
	err                          error
	etcd, apiserver, vso, eso    string
	vsoCRDs, esoCRDs, kubectlBin string
}

// requireKube is requireVault for the Kubernetes tier: it skips the test
// when NHNCERT_SKIP_KUBE=1 or a part is missing, saying which, except when
// CI is set: CI must run the tier, so there a missing part fails the test.
func requireKube(t *testing.T) {
	t.Helper()
	requireVault(t)
	reason := ""
	if os.Getenv("NHNCERT_SKIP_KUBE") == "1" {
		reason = "NHNCERT_SKIP_KUBE=1"
	} else {
		kubeBins.once.Do(func() { kubeBins.err = findKubeParts() })
		if kubeBins.err != nil {
			reason = kubeBins.err.Error()
		}
	}
	if reason == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("the Kubernetes tier cannot run (%s), and CI may not skip it", reason)
	}
	t.Skipf("SKIPPED: %s; nothing was checked against Kubernetes operators", reason)
}

// findKubeParts fills kubeBins from the environment, asking
// ../scripts/kube.sh for what is not set (it builds a missing part, which
// takes minutes the first time).
func findKubeParts() error {
	for _, p := range kubePartList {
		path := os.Getenv(p.env)
		if path == "" {
			args := []string{p.name}
			if p.crds {
				args = []string{"crds", p.name}
			}
			fmt.Fprintf(os.Stderr, "integration: %s not set; asking ../scripts/kube.sh %s\n", p.env, strings.Join(args, " "))
			cmd := exec.Command("../scripts/kube.sh", args...)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("scripts/kube.sh %s: %w", strings.Join(args, " "), err)
			}
			path = strings.TrimSpace(string(out))
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		st, err := os.Stat(abs)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %s: %w", p.name, p.env, err)
		case p.crds && !st.IsDir():
			return fmt.Errorf("%s=%s is not a directory", p.env, path)
		case !p.crds && (st.IsDir() || st.Mode()&0o111 == 0):
			return fmt.Errorf("%s=%s is not an executable file", p.env, path)
		}
		*p.path = abs
	}
	k, err := exec.LookPath("kubectl")
	if err != nil {
		return fmt.Errorf("kubectl is not on PATH: %w", err)
	}
	kubeBins.kubectlBin = k
	if _, err := exec.LookPath("openssl"); err != nil {
		return fmt.Errorf("openssl (for the API server's certificates) is not on PATH: %w", err)
	}
	return nil
}
