package integration

import "testing"

// esoGroup is ESO's API group, version v1 (served since ESO v0.16).
const esoGroup = "/apis/external-secrets.io/v1"

// TestKubeESOExternalSecret runs the README's SecretStore (Vault provider,
// version v1, Kubernetes auth) and ExternalSecret (a kubernetes.io/tls
// template) through ESO v0.20.4: ESO re-reads every refreshInterval,
// whatever the ttl.
func TestKubeESOExternalSecret(t *testing.T) {
	t.Parallel()
	k := sharedKube(t)
	runSyncCase(t, syncCase{
		operator: k.eso, apiGroup: esoGroup, resource: "externalsecrets",
		manifests: []string{"eso/secretstore.yaml", "eso/externalsecret.yaml"},
		period:    manifestDuration(t, "eso/externalsecret.yaml", "refreshInterval"),
	})
}
