package integration

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// kubeCluster is an etcd and a kube-apiserver on loopback, with no kubelet
// and no controller manager: enough for operators, which only read and
// write API objects. Nothing garbage-collects (ownerReferences are never
// followed) and no namespace gets a default ServiceAccount: the tests
// create ServiceAccounts and delete Secrets themselves.
type kubeCluster struct {
	dir        string
	etcd       *proc
	apiserver  *proc
	url        string // https://127.0.0.1:port
	caFile     string // the CA that signed the serving certificate
	caPEM      []byte
	kubeconfig string // admin (system:masters) through a static token
	adminToken string
	http       *http.Client
}

// startKubeCluster makes the certificates and keys with openssl, then
// starts etcd and the API server in dir on free loopback ports and waits
// (bounded) for /readyz. A non-nil cluster is returned whenever something
// was started, also with an error, so that the caller can stop it.
func startKubeCluster(dir string) (*kubeCluster, error) {
	c := &kubeCluster{dir: dir, adminToken: randomHex(24)}
	if err := c.makeCredentials(); err != nil {
		return nil, err
	}
	clientPort, err1 := freePort()
	peerPort, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	c.etcd, err1 = startProc("etcd", filepath.Join(dir, "etcd.log"), baseEnv(dir), kubeBins.etcd,
		"--name=itest", "--data-dir="+filepath.Join(dir, "etcd-data"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=itest="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	if err1 != nil {
		return nil, err1
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if err := poll(startTimeout, "etcd's /health", c.etcd, func() (bool, error) {
		body, err := httpGet(plain, etcdURL+"/health", "")
		return err == nil && strings.Contains(body, `"health":"true"`), fmt.Errorf("%v %s", err, body)
	}); err != nil {
		return c, err
	}

	port, err := freePort()
	if err != nil {
		return c, err
	}
	c.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	f := func(name string) string { return filepath.Join(dir, name) }
	c.apiserver, err = startProc("kube-apiserver", f("kube-apiserver.log"), baseEnv(dir), kubeBins.apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port), "--advertise-address=127.0.0.1",
		"--tls-cert-file="+f("apiserver.crt"), "--tls-private-key-file="+f("apiserver.key"),
		"--cert-dir="+f("apiserver-certs"),
		"--token-auth-file="+f("tokens.csv"), "--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+f("sa.pub"), "--service-account-signing-key-file="+f("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
		"--profiling=false", "--v=1")
	if err != nil {
		return c, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := poll(startTimeout, "kube-apiserver's /readyz", c.apiserver, func() (bool, error) {
		body, err := httpGet(c.http, c.url+"/readyz", c.adminToken)
		return err == nil && body == "ok", fmt.Errorf("%v %.200s", err, body)
	}); err != nil {
		return c, err
	}
	return c, c.writeKubeconfig()
}

// makeCredentials writes, with openssl: a CA and the API server's serving
// certificate (SAN IP:127.0.0.1) signed by it, the service-account
// signing key pair, and the token file holding the admin's token.
func (c *kubeCluster) makeCredentials() error {
	f := func(name string) string { return filepath.Join(c.dir, name) }
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"}
	steps := [][]string{
		append(append([]string{"req", "-x509"}, ec...), "-keyout", f("ca.key"), "-out", f("ca.crt"),
			"-subj", "/CN=nhncert-itest-kube-ca", "-days", "2"),
		append(append([]string{"req"}, ec...), "-keyout", f("apiserver.key"), "-out", f("apiserver.csr"),
			"-subj", "/CN=kube-apiserver"),
		{"x509", "-req", "-in", f("apiserver.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial",
			"-out", f("apiserver.crt"), "-days", "2", "-extfile", f("san.ext")},
		{"genrsa", "-out", f("sa.key"), "2048"},
		{"rsa", "-in", f("sa.key"), "-pubout", "-out", f("sa.pub")},
	}
	if err := os.WriteFile(f("san.ext"), []byte("subjectAltName=IP:127.0.0.1,DNS:localhost\n"), 0o600); err != nil {
		return err
	}
	for _, args := range steps {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("openssl %s: %w: %s", args[0], err, out)
		}
	}
	var err error
	if c.caPEM, err = os.ReadFile(f("ca.crt")); err != nil {
		return err
	}
	c.caFile = f("ca.crt")
	return os.WriteFile(f("tokens.csv"), []byte(c.adminToken+",itest-admin,itest-admin-uid,system:masters\n"), 0o600)
}

// writeKubeconfig writes the admin's kubeconfig, which kubectl and the
// operators use.
func (c *kubeCluster) writeKubeconfig() error {
	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: itest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: itest
  context: {cluster: itest, user: admin}
current-context: itest
`, c.url, c.caFile, c.adminToken)
	return os.WriteFile(c.kubeconfig, []byte(cfg), 0o600)
}

// stop stops the API server, then etcd.
func (c *kubeCluster) stop() {
	if c.apiserver != nil {
		_ = c.apiserver.stop()
	}
	if c.etcd != nil {
		_ = c.etcd.stop()
	}
}

// logTails returns the last lines of etcd's and the API server's logs.
func (c *kubeCluster) logTails() string {
	var b strings.Builder
	for _, p := range []*proc{c.etcd, c.apiserver} {
		if p != nil {
			fmt.Fprintf(&b, "---- %s (tail) ----\n%s\n", p.logPath, tail(p.logPath, 30))
		}
	}
	return b.String()
}

// kubectlResult is one kubectl run.
type kubectlResult struct {
	cmdOutput
	err error
}

// String shows the command and its output; callers never pass a command
// whose stdout holds a secret (kubectl create token) to a failure message.
func (r kubectlResult) String() string {
	return fmt.Sprintf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.err, r.stdout, r.stderr)
}

// kubectl runs kubectl as the admin, with stdin, bounded by cliTimeout.
func (c *kubeCluster) kubectl(stdin string, args ...string) kubectlResult {
	cmd := exec.Command(kubeBins.kubectlBin, append([]string{"--kubeconfig=" + c.kubeconfig}, args...)...)
	cmd.Env = baseEnv(c.dir)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	r := kubectlResult{cmdOutput: cmdOutput{args: args}}
	if err := cmd.Start(); err != nil {
		r.err = err
		return r
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case r.err = <-done:
	case <-time.After(cliTimeout):
		_ = cmd.Process.Kill()
		r.err = fmt.Errorf("not done after %s; killed (%v)", cliTimeout, <-done)
	}
	r.stdout, r.stderr = out.String(), errb.String()
	return r
}

// get GETs an API path (such as /api/v1/namespaces/x/secrets/y) as the
// admin and returns the body; a status other than 200 is an error.
func (c *kubeCluster) get(path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, c.url+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.adminToken)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &kubeStatusError{path: path, status: resp.StatusCode, body: string(b)}
	}
	return b, nil
}

// kubeStatusError is an API answer other than 200.
type kubeStatusError struct {
	path   string
	status int
	body   string
}

func (e *kubeStatusError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d: %.300s", e.path, e.status, e.body)
}

// httpGet GETs url (with a bearer token unless empty) and returns the body
// of a 200 answer.
func httpGet(c *http.Client, url, token string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return string(b), nil
}
