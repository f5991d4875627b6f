package integration

import (
	"testing"
	"time"
)

// VSO's API group; with both operators' CRDs installed, name its resources
// in full (vaultdynamicsecrets.secrets.hashicorp.com): ESO has a
// VaultDynamicSecret generator too, and kubectl's short name picks that.
const vsoGroup = "/apis/secrets.hashicorp.com/v1beta1"

// vdsPeriod is the longest time between two reads of a VaultDynamicSecret
// with allowStaticCreds: VSO re-reads at ttl + 0.5 s + up to 0.15 s of
// jitter, and the engine's ttl is at most the time to its next background
// run (engineLag). VSO v1.5.0 takes the ttl of the last read (before
// 1.4.0 it took the ttl of the last read whose data changed, which the
// same bound covered): every ttl the engine gives is within it.
const vdsPeriod = engineLag + 650*time.Millisecond

// TestKubeVSODynamicSecret runs the README's VaultDynamicSecret
// (allowStaticCreds) with Kubernetes auth through VSO v1.5.0.
func TestKubeVSODynamicSecret(t *testing.T) {
	t.Parallel()
	k := sharedKube(t)
	runSyncCase(t, syncCase{
		operator: k.vso, apiGroup: vsoGroup, resource: "vaultdynamicsecrets",
		manifests: []string{"vso/vaultauth.yaml", "vso/vaultdynamicsecret.yaml"},
		period:    vdsPeriod, mac: "secretMAC", settle: true,
	})
}

// TestKubeVSODynamicSecretAppRole is the same VaultDynamicSecret, with
// vaultauth-approle.yaml's VaultAuth (AppRole) in place of Kubernetes
// auth.
func TestKubeVSODynamicSecretAppRole(t *testing.T) {
	t.Parallel()
	k := sharedKube(t)
	runSyncCase(t, syncCase{
		operator: k.vso, apiGroup: vsoGroup, resource: "vaultdynamicsecrets",
		manifests: []string{"vso/vaultauth.yaml", "vso/vaultauth-approle.yaml", "vso/vaultdynamicsecret.yaml"},
		appRole:   true, period: vdsPeriod, mac: "secretMAC", settle: true,
	})
}

// TestKubeVSOStaticSecret runs the README's VaultStaticSecret (kv-v1)
// with Kubernetes auth: VSO re-reads every refreshAfter, whatever the ttl.
func TestKubeVSOStaticSecret(t *testing.T) {
	t.Parallel()
	k := sharedKube(t)
	runSyncCase(t, syncCase{
		operator: k.vso, apiGroup: vsoGroup, resource: "vaultstaticsecrets",
		manifests: []string{"vso/vaultauth.yaml", "vso/vaultstaticsecret.yaml"},
		period:    manifestDuration(t, "vso/vaultstaticsecret.yaml", "refreshAfter"), mac: "secretMAC",
	})
}
