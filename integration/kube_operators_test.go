package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// vsoNamespace is the Vault Secrets Operator's own namespace
// (OPERATOR_NAMESPACE): where it would run in a cluster.
const vsoNamespace = "vault-secrets-operator-system"

// kubeEnv is the API server with both operators' CRDs installed and both
// operators running out-of-cluster against it, as the admin: what every
// Kubernetes test shares. Each test brings its own Vault, emulator and
// namespace.
type kubeEnv struct {
	*kubeCluster
	vso, eso *proc
	// reviewerJWT is the token of the ServiceAccount that Vault's
	// auth/kubernetes sends TokenReviews with (deploy/kubernetes/vault/).
	reviewerJWT string
}

var sharedKubeEnv struct {
	once sync.Once
	env  *kubeEnv
	err  error
}

// sharedKube returns the shared cluster and operators, starting them on
// first use (they are stopped after the last test). On failure the test
// gets the tails of their logs.
func sharedKube(t *testing.T) *kubeEnv {
	t.Helper()
	requireKube(t)
	s := &sharedKubeEnv
	s.once.Do(func() {
		dir, err := os.MkdirTemp("", "nhncert-integration-kube-")
		if err != nil {
			s.err = err
			return
		}
		start := time.Now()
		k, err := startKubeEnv(dir)
		if k != nil {
			addGlobalCleanup(func() {
				k.stop()
				if keepLogs() {
					fmt.Fprintf(os.Stderr, "integration: Kubernetes logs kept in %s\n", dir)
				} else {
					os.RemoveAll(dir)
				}
			})
		} else {
			os.RemoveAll(dir)
		}
		if err != nil {
			if k != nil {
				err = fmt.Errorf("%w\n%s", err, k.logTails())
			}
			s.err = err
			return
		}
		fmt.Fprintf(os.Stderr, "integration: etcd, kube-apiserver, VSO and ESO ready in %s\n", time.Since(start).Round(time.Millisecond))
		s.env = k
	})
	require.NoError(t, s.err, "starting the Kubernetes tier (etcd, kube-apiserver, VSO, ESO)")
	k := s.env
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the Kubernetes tier:\n%s", k.logTails())
		}
	})
	return k
}

// startKubeEnv starts the cluster, installs the CRDs, makes Vault's token
// reviewer and starts both operators.
func startKubeEnv(dir string) (*kubeEnv, error) {
	c, err := startKubeCluster(dir)
	if c == nil {
		return nil, err
	}
	k := &kubeEnv{kubeCluster: c}
	if err != nil {
		return k, err
	}
	steps := [][]string{
		{"apply", "--server-side", "-f", kubeBins.vsoCRDs},
		{"apply", "--server-side", "-k", kubeBins.esoCRDs},
		{"wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"},
		{"create", "namespace", vsoNamespace},
		{"apply", "-f", filepath.Join("..", "deploy", "kubernetes", "vault", "token-reviewer.yaml")},
	}
	for _, args := range steps {
		if r := c.kubectl("", args...); r.err != nil {
			return k, fmt.Errorf("installing: %s", r)
		}
	}
	r := c.kubectl("", "create", "token", "vault-token-reviewer", "-n", "kube-system", "--duration=4h")
	if r.err != nil {
		return k, fmt.Errorf("kubectl create token vault-token-reviewer: %v: %s", r.err, r.stderr)
	}
	k.reviewerJWT = strings.TrimSpace(r.stdout)
	if err := k.startVSO(); err != nil {
		return k, err
	}
	return k, k.startESO()
}

// startVSO runs the Vault Secrets Operator as its Deployment would, but
// out-of-cluster: OPERATOR_NAMESPACE and OPERATOR_POD_UID stand in for the
// downward API, --kubeconfig for the in-cluster config.
func (k *kubeEnv) startVSO() error {
	metrics, err1 := freePort()
	health, err2 := freePort()
	if err1 != nil || err2 != nil {
		return fmt.Errorf("free ports: %v %v", err1, err2)
	}
	env := baseEnv(k.dir, "OPERATOR_NAMESPACE="+vsoNamespace, "OPERATOR_POD_UID=itest-"+randomHex(8), "KUBECONFIG="+k.kubeconfig)
	p, err := startProc("vault-secrets-operator", filepath.Join(k.dir, "vso.log"), env, kubeBins.vso,
		"--kubeconfig="+k.kubeconfig, "--leader-elect=false",
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metrics),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", health),
		"--client-cache-persistence-model=none")
	if err != nil {
		return err
	}
	k.vso = p
	plain := &http.Client{Timeout: 5 * time.Second}
	return poll(startTimeout, "VSO's /readyz", p, func() (bool, error) {
		_, err := httpGet(plain, fmt.Sprintf("http://127.0.0.1:%d/readyz", health), "")
		return err == nil, err
	})
}

// startESO runs the External Secrets Operator's controller out-of-cluster
// (KUBECONFIG), without its webhook and cert-controller: nothing here
// needs admission or conversion webhooks.
func (k *kubeEnv) startESO() error {
	metrics, err := freePort()
	if err != nil {
		return err
	}
	live, err := freePort()
	if err != nil {
		return err
	}
	// ESO v0.20 serves its liveness check on --live-addr (default :8082,
	// every interface), beside the metrics; both stay on loopback here.
	p, err := startProc("external-secrets", filepath.Join(k.dir, "eso.log"), baseEnv(k.dir, "KUBECONFIG="+k.kubeconfig), kubeBins.eso,
		"--enable-leader-election=false", fmt.Sprintf("--metrics-addr=127.0.0.1:%d", metrics),
		fmt.Sprintf("--live-addr=127.0.0.1:%d", live), "--loglevel=info")
	if err != nil {
		return err
	}
	k.eso = p
	plain := &http.Client{Timeout: 5 * time.Second}
	return poll(startTimeout, "ESO's /healthz and metrics endpoints", p, func() (bool, error) {
		if _, err := httpGet(plain, fmt.Sprintf("http://127.0.0.1:%d/healthz", live), ""); err != nil {
			return false, err
		}
		_, err := httpGet(plain, fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics), "")
		return err == nil, err
	})
}

// stop stops the operators, then the cluster.
func (k *kubeEnv) stop() {
	for _, p := range []*proc{k.vso, k.eso} {
		if p != nil {
			_ = p.stop()
		}
	}
	k.kubeCluster.stop()
}

// logTails adds the operators' logs to the cluster's.
func (k *kubeEnv) logTails() string {
	var b strings.Builder
	b.WriteString(k.kubeCluster.logTails())
	for _, p := range []*proc{k.vso, k.eso} {
		if p != nil {
			fmt.Fprintf(&b, "---- %s (tail) ----\n%s\n", p.logPath, tail(p.logPath, 60))
		}
	}
	return b.String()
}
