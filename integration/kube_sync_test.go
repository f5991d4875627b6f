package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kubeRefreshInterval is the engine's refresh_interval in these tests: a
// renewal in NHN is served after the next background run, at most
// 1.1 x refresh_interval later (the runs are jittered by ±10%), plus the
// run itself.
const kubeRefreshInterval = 5 * time.Second

// engineLag bounds the time from a renewal in NHN to Vault serving it.
const engineLag = kubeRefreshInterval*11/10 + time.Second

// operatorSlack is what an operator needs on top of its timer: a login,
// the read, the Secret's update.
const operatorSlack = 3 * time.Second

// syncCase is one recipe: the manifests applied (in order) and what the
// operator re-reads when.
type syncCase struct {
	operator  *proc  // the operator that syncs it (its exit fails the waits)
	resource  string // the custom resource's API path under the namespace, e.g. vaultdynamicsecrets
	apiGroup  string // e.g. /apis/secrets.hashicorp.com/v1beta1
	manifests []string
	appRole   bool // VSO logs in with AppRole instead of Kubernetes auth
	// period is the longest time between two of the operator's reads, from
	// the settings: the engine's ttl, refreshAfter or refreshInterval.
	period time.Duration
	// settle makes the test wait, before the renewal, for one more read by
	// the operator: what the first sync set off (VSO restarts the
	// rolloutRestartTargets after a VaultDynamicSecret's first sync) is
	// then over, and that read must not rewrite the Secret either. For
	// operators with a short period only.
	settle bool
	// mac names the status field holding the MAC of the Secret's data
	// (VSO), or is empty.
	mac string
}

const (
	certName   = "example.com"     // the certificate the recipes read
	secretName = "example-com-tls" // the Secret (and custom resource) they write
)

// runSyncCase applies c in a namespace of its own against a Vault of its
// own, checks the first sync, renews the certificate in the emulator and
// checks that the renewal reaches the Secret within engineLag + c.period
// + operatorSlack, and that the Secret is rewritten once for it although
// the operator reads again.
func runSyncCase(t *testing.T, c syncCase) {
	k := sharedKube(t)
	e := newEnv(t, withMountConfig(fmt.Sprintf("refresh_interval=%ds", int(kubeRefreshInterval.Seconds()))))
	ns := kubeNamespace(t, k, "itest")
	vaultForKube(t, k, e, ns)
	if c.appRole {
		vaultAppRole(t, k, e, ns)
	}
	createWebDeployment(t, k, ns)

	start := time.Now()
	for _, m := range c.manifests {
		applyManifest(t, k, ns, m, e.vault.addr)
	}
	first := emulatorSerial(t, e, certName)
	s, _ := waitSecretSerial(t, k, c.operator, ns, secretName, first, 60*time.Second)
	t.Logf("initial sync: Secret %s/%s written %s after the first manifest was applied", ns, secretName, time.Since(start).Round(10*time.Millisecond))
	checkSecretMatchesVault(t, e, s, certName)

	w := watchSecret(t, k, ns, secretName)
	if c.settle {
		n := operatorReads(t, e, certName)
		require.NoError(t, poll(c.period+operatorSlack+5*time.Second, "the operator to read the certificate again", c.operator, func() (bool, error) {
			return operatorReads(t, e, certName) > n, nil
		}))
	}
	macBefore := c.statusField(t, k, ns)
	genBefore := deploymentGeneration(t, k, ns)
	readsBefore := operatorReads(t, e, certName)

	rotated, err := e.emu.admin.Rotate(ctxT(t), certName)
	require.NoError(t, err)
	require.NotEqual(t, first, rotated.Serial)
	renewedAt := time.Now()
	bound := engineLag + c.period + operatorSlack
	s, took := waitSecretSerial(t, k, c.operator, ns, secretName, rotated.Serial, 2*bound)
	t.Logf("renewal: reached the Secret %s after the renewal in NHN (bound %s = engine %s + operator period %s + %s)",
		took.Round(10*time.Millisecond), bound, engineLag, c.period, operatorSlack)
	assert.LessOrEqual(t, took, bound, "the renewed certificate reached the Secret too late")
	checkSecretMatchesVault(t, e, s, certName)

	// VSO's MAC of the Secret's data follows the certificate: it changes
	// now (the status is written just after the Secret).
	macAfter := macBefore
	if c.mac != "" {
		require.NoError(t, poll(10*time.Second, "status."+c.mac+" to change with the certificate", c.operator, func() (bool, error) {
			macAfter = c.statusField(t, k, ns)
			return macAfter != macBefore, nil
		}))
	}

	// The operator reads again at least once more, getting another ttl
	// and the same certificate; the Secret stays as it is: one rewrite
	// for one renewal.
	readsAtRenewal := operatorReads(t, e, certName)
	require.NoError(t, poll(c.period+operatorSlack+5*time.Second, "the operator to read the certificate again", c.operator, func() (bool, error) {
		n := operatorReads(t, e, certName)
		return n > readsAtRenewal, fmt.Errorf("%d reads since the renewal reached the Secret", n-readsAtRenewal)
	}))
	readsAfter := operatorReads(t, e, certName)
	mods := w.modifiedSince(renewedAt)
	w.alive(t)
	t.Logf("rewrites: %d of the Secret since the renewal, over %d reads by the operator (%d before the renewal was served, %d after)",
		len(mods), readsAfter-readsBefore, readsAtRenewal-readsBefore, readsAfter-readsAtRenewal)
	assert.Len(t, mods, 1, "the Secret was rewritten %d times for one renewal (resourceVersions %v)", len(mods), mods)
	assert.Zero(t, len(w.modifiedSince(time.Time{}))-len(mods), "the Secret was rewritten between the first sync and the renewal")
	if c.mac == "" {
		return
	}
	// The re-read's ttl and last_vault_rotation differ from the last
	// ones: they are not part of the MAC.
	assert.Equal(t, macAfter, c.statusField(t, k, ns), "status.%s changed on a re-read of the same certificate", c.mac)
	// VSO restarts the rolloutRestartTargets once for the renewal.
	gen := deploymentGeneration(t, k, ns)
	t.Logf("rollout restarts of the Deployment web: %d by the first sync, %d for the renewal", genBefore-1, gen-genBefore)
	assert.Equal(t, genBefore+1, gen, "the Deployment web was rollout-restarted %d times for one renewal", gen-genBefore)
}

// statusField returns status.<c.mac> of the custom resource ("" when c
// has no MAC).
func (c syncCase) statusField(t *testing.T, k *kubeEnv, ns string) string {
	t.Helper()
	if c.mac == "" {
		return ""
	}
	st := customResource(t, k, c.apiGroup, ns, c.resource, secretName)
	s, _ := st.Status[c.mac].(string)
	return s
}

// customResourceObject is the part of a custom resource the tests read.
type customResourceObject struct {
	Status map[string]any `json:"status"`
}

// customResource reads one custom resource through the API server.
func customResource(t *testing.T, k *kubeEnv, apiGroup, ns, resource, name string) customResourceObject {
	t.Helper()
	b, err := k.get(apiGroup + "/namespaces/" + ns + "/" + resource + "/" + name)
	require.NoError(t, err)
	var o customResourceObject
	require.NoError(t, json.Unmarshal(b, &o))
	return o
}

// deploymentGeneration returns metadata.generation of the Deployment web:
// it counts the changes of its pod template, which is what a rollout
// restart changes.
func deploymentGeneration(t *testing.T, k *kubeEnv, ns string) int64 {
	t.Helper()
	b, err := k.get("/apis/apps/v1/namespaces/" + ns + "/deployments/web")
	require.NoError(t, err)
	var d struct {
		Metadata struct {
			Generation int64 `json:"generation"`
		} `json:"metadata"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	return d.Metadata.Generation
}

// manifestDuration reads a duration setting (such as refreshAfter) from
// deploy/kubernetes/<file>: the bounds follow the recipe.
func manifestDuration(t *testing.T, file, field string) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(manifestDir, file))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*` + field + `:\s*(\S+)\s*$`).FindSubmatch(b)
	require.NotNil(t, m, "%s has no %s", file, field)
	d, err := time.ParseDuration(string(m[1]))
	require.NoError(t, err, "%s: %s", file, field)
	return d
}
