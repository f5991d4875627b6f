package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// manifestDir is where the README's Kubernetes manifests live; the tests
// apply these files, and TestKubeReadmeManifests holds the README to them.
var manifestDir = filepath.Join("..", "deploy", "kubernetes")

// readmeVaultAddress is the Vault address the manifests are written with;
// the tests put their own Vault's in its place, and nothing else.
const readmeVaultAddress = "https://vault.example.com:8200"

// kubeNamespace creates a namespace of the test's own and, when the test
// ends, deletes what the operators act on in it (their custom resources,
// then the Secrets): with no controller manager, nothing would be
// garbage-collected, and the operators would go on syncing against a
// stopped Vault. Register it after newEnv, so that it runs before that
// Vault stops.
func kubeNamespace(t *testing.T, k *kubeEnv, prefix string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%s", prefix, randomHex(3))
	r := k.kubectl("", "create", "namespace", ns)
	require.NoError(t, r.err, "%s", r)
	t.Cleanup(func() {
		for _, kind := range []string{
			"vaultdynamicsecrets.secrets.hashicorp.com", "vaultstaticsecrets.secrets.hashicorp.com",
			"externalsecrets.external-secrets.io", "secretstores.external-secrets.io",
			"vaultauths.secrets.hashicorp.com", "vaultconnections.secrets.hashicorp.com", "secrets",
		} {
			if r := k.kubectl("", "delete", kind, "--all", "-n", ns, "--wait=false"); r.err != nil {
				t.Logf("cleanup: %s", r)
			}
		}
	})
	return ns
}

// applyManifest applies deploy/kubernetes/<file> in namespace ns, with the
// test's Vault address (vaultAddr) in place of the README's where the file
// has it, and other replacements (old, new pairs) if a test must change
// more; each of those must be in the file, so that a changed file cannot
// make the test apply something other than it means to.
func applyManifest(t *testing.T, k *kubeEnv, ns, file, vaultAddr string, replace ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(manifestDir, file))
	require.NoError(t, err)
	text := string(b)
	if strings.Contains(text, readmeVaultAddress) {
		text = strings.ReplaceAll(text, readmeVaultAddress, vaultAddr)
	}
	for i := 0; i+1 < len(replace); i += 2 {
		require.True(t, strings.Contains(text, replace[i]), "%s no longer says %q", file, replace[i])
		text = strings.ReplaceAll(text, replace[i], replace[i+1])
	}
	r := k.kubectl(text, "apply", "-n", ns, "-f", "-")
	require.NoError(t, r.err, "applying %s: %s", file, r)
}

// webDeployment is the Deployment the recipes' rolloutRestartTargets
// name. With no kubelet nor controller manager it runs nothing, but VSO's
// rollout restart is visible in it: the annotation
// vso.secrets.hashicorp.com/restartedAt on its pod template.
const webDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: nginx
          image: nginx
`

// createWebDeployment creates the Deployment web in ns.
func createWebDeployment(t *testing.T, k *kubeEnv, ns string) {
	t.Helper()
	r := k.kubectl(webDeployment, "apply", "-n", ns, "-f", "-")
	require.NoError(t, r.err, "%s", r)
}
