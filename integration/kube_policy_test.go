package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// otherCert is what a user edits in a recipe to sync another certificate,
// which the policy web-tls does not allow.
var otherCert = []string{
	"certs/example.com", "certs/api.example.com",
	"name: example-com-tls", "name: api-example-com-tls",
}

// TestKubePolicyDenies applies the recipes for a certificate the role's
// policy does not allow (web-tls allows nhncert/certs/example.com only):
// no operator writes the Secret, and each says why where a user looks
// (kubectl describe): Vault's "permission denied" in the resource's
// events, and for ESO also Ready=False in its status. For VSO (v1.5.0)
// the test looks at the events only, the place VSO v0.10.0 used.
func TestKubePolicyDenies(t *testing.T) {
	t.Parallel()
	k := sharedKube(t)
	e := newEnv(t)
	ns := kubeNamespace(t, k, "itest-deny")
	vaultForKube(t, k, e, ns)
	createWebDeployment(t, k, ns)
	addr := e.vault.addr
	applyManifest(t, k, ns, "vso/vaultauth.yaml", addr)
	applyManifest(t, k, ns, "vso/vaultdynamicsecret.yaml", addr, otherCert...)
	// The VaultStaticSecret writes a Secret of another name than the
	// VaultDynamicSecret's.
	applyManifest(t, k, ns, "vso/vaultstaticsecret.yaml", addr, append(otherCert[:2:2], "name: example-com-tls", "name: api-example-com-static")...)
	applyManifest(t, k, ns, "eso/secretstore.yaml", addr)
	applyManifest(t, k, ns, "eso/externalsecret.yaml", addr, append(otherCert[:2:2], "name: example-com-tls", "name: api-example-com-eso")...)

	for _, c := range []struct {
		kind, name string
		op         *proc
	}{
		{"VaultDynamicSecret", "api-example-com-tls", k.vso},
		{"VaultStaticSecret", "api-example-com-static", k.vso},
		{"ExternalSecret", "api-example-com-eso", k.eso},
	} {
		msg := waitEvent(t, k, c.op, ns, c.kind, c.name, "permission denied", 60*time.Second)
		t.Logf("%s %s: %s", c.kind, c.name, msg)
		_, err := k.secret(ns, c.name)
		var st *kubeStatusError
		if assert.ErrorAs(t, err, &st, "%s %s: its Secret exists although Vault denied the read", c.kind, c.name) {
			assert.Equal(t, 404, st.status, "%s %s: reading its Secret", c.kind, c.name)
		}
	}

	es := customResource(t, k, esoGroup, ns, "externalsecrets", "api-example-com-eso")
	ready := condition(es.Status, "Ready")
	assert.Equal(t, "False", ready["status"], "the ExternalSecret's Ready condition: %v", ready)
	assert.Equal(t, "SecretSyncedError", ready["reason"], "the ExternalSecret's Ready condition: %v", ready)
	t.Logf("ExternalSecret status: Ready=%v reason=%v message=%q", ready["status"], ready["reason"], ready["message"])

	// The same role reads what its policy allows: the denial is the
	// policy's, not a broken login.
	applyManifest(t, k, ns, "eso/externalsecret.yaml", addr)
	s, _ := waitSecretSerial(t, k, k.eso, ns, secretName, emulatorSerial(t, e, certName), 60*time.Second)
	checkSecretMatchesVault(t, e, s, certName)
}

// waitEvent waits, at most bound, for a Warning event of the object
// kind/name in ns whose message holds want, and returns the message.
func waitEvent(t *testing.T, k *kubeEnv, op *proc, ns, kind, name, want string, bound time.Duration) string {
	t.Helper()
	sel := url.Values{"fieldSelector": {"involvedObject.kind=" + kind + ",involvedObject.name=" + name}}
	var found string
	err := poll(bound, fmt.Sprintf("a Warning event of %s %s/%s saying %q", kind, ns, name, want), op, func() (bool, error) {
		b, err := k.get("/api/v1/namespaces/" + ns + "/events?" + sel.Encode())
		if err != nil {
			return false, err
		}
		var list struct {
			Items []struct {
				Type, Reason, Message string
			} `json:"items"`
		}
		if err := json.Unmarshal(b, &list); err != nil {
			return false, err
		}
		var seen []string
		for _, ev := range list.Items {
			if ev.Type == "Warning" && strings.Contains(ev.Message, want) {
				found = ev.Reason + ": " + ev.Message
				return true, nil
			}
			seen = append(seen, ev.Type+" "+ev.Reason)
		}
		return false, errors.New("events: " + strings.Join(seen, "; "))
	})
	require.NoError(t, err)
	return found
}

// condition returns the condition of type typ in a status, or nil.
func condition(status map[string]any, typ string) map[string]any {
	l, _ := status["conditions"].([]any)
	for _, c := range l {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			return m
		}
	}
	return nil
}
