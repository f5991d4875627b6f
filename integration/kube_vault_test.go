package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// webPolicy is the Vault policy the operators' role gets, as the README
// gives it: read on one certificate and nothing else of nhncert.
const webPolicy = `path "nhncert/certs/example.com" {
  capabilities = ["read"]
}
`

// vaultForKube readies a test's Vault for the operators of namespace ns,
// as the README's "Vault: let the operators in" says: the policy web-tls,
// auth/kubernetes verifying service-account tokens against the API server
// (TokenReview, with the reviewer's token), the role web for the
// ServiceAccount web of ns, and a file audit device whose log counts the
// operators' reads.
func vaultForKube(t *testing.T, k *kubeEnv, e *env, ns string) {
	t.Helper()
	v := e.vault
	policy := filepath.Join(t.TempDir(), "web-tls.hcl")
	require.NoError(t, os.WriteFile(policy, []byte(webPolicy), 0o600))
	mustCLI(t, v, "policy", "write", "web-tls", policy)
	mustCLI(t, v, "audit", "enable", "file", "file_path="+auditLog(e))
	mustCLI(t, v, "auth", "enable", "kubernetes")
	// The reviewer's token goes through stdin, never on a command line.
	r := v.cli(v.rootToken, k.reviewerJWT, "write", "auth/kubernetes/config",
		"kubernetes_host="+k.url, "kubernetes_ca_cert=@"+k.caFile,
		"token_reviewer_jwt=-", "disable_local_ca_jwt=true")
	require.Equal(t, 0, r.code, "vault write auth/kubernetes/config: exit %d: %s", r.code, r.stderr)
	mustCLI(t, v, "write", "auth/kubernetes/role/web",
		"bound_service_account_names=web", "bound_service_account_namespaces="+ns,
		"token_policies=web-tls", "token_ttl=1h")
}

// vaultAppRole enables auth/approle with the role web (RoleID "web",
// policy web-tls) and stores a new SecretID in ns's Secret web-approle
// (key id), where vaultauth-approle.yaml points VSO.
func vaultAppRole(t *testing.T, k *kubeEnv, e *env, ns string) {
	t.Helper()
	v := e.vault
	mustCLI(t, v, "auth", "enable", "approle")
	mustCLI(t, v, "write", "auth/approle/role/web", "token_policies=web-tls", "token_ttl=1h")
	mustCLI(t, v, "write", "auth/approle/role/web/role-id", "role_id=web")
	r := v.cli(v.rootToken, "", "write", "-f", "-field=secret_id", "auth/approle/role/web/secret-id")
	require.Equal(t, 0, r.code, "vault write auth/approle/role/web/secret-id: exit %d: %s", r.code, r.stderr)
	// The SecretID through stdin, never on kubectl's command line.
	kr := k.kubectl(strings.TrimSpace(r.stdout), "create", "secret", "generic", "web-approle", "-n", ns, "--from-file=id=/dev/stdin")
	require.NoError(t, kr.err, "kubectl create secret generic web-approle: %s", kr.stderr)
}

// auditLog is the path of e's Vault's audit log.
func auditLog(e *env) string { return filepath.Join(e.dir, "audit.log") }

// operatorReads counts the reads of mount/certs/name that Vault answered
// to a token with the policy web-tls (an operator's, not the test's root
// token), from the audit log.
func operatorReads(t *testing.T, e *env, name string) int {
	t.Helper()
	f, err := os.Open(auditLog(e))
	require.NoError(t, err)
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var entry struct {
			Type string `json:"type"`
			Auth struct {
				Policies []string `json:"policies"`
			} `json:"auth"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal(sc.Bytes(), &entry) != nil || entry.Type != "response" {
			continue
		}
		if entry.Request.Path == mount+"/certs/"+name && entry.Request.Operation == "read" && slices.Contains(entry.Auth.Policies, "web-tls") {
			n++
		}
	}
	require.NoError(t, sc.Err())
	return n
}
