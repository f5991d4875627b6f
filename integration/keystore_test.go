package integration

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Java-facing formats and the consumers that read them on this
// machine: OpenSSL 3 (`openssl pkcs12`) and JDK 17 (`keytool`).

// toolTimeout bounds one run of openssl, keytool or java.
const toolTimeout = 60 * time.Second

// consumerKeyTypes are the key types the consumer tests serve, one
// certificate each, with the root in the file.
var consumerKeyTypes = []emulator.KeyType{emulator.RSA, emulator.EC, emulator.Ed25519}

// consumerCert is one certificate added to the emulator for the consumer
// tests.
type consumerCert struct {
	name string
	kt   emulator.KeyType
}

// addConsumerCerts adds one certificate per consumerKeyTypes (one
// intermediate, the root in the file, the key first) and returns them.
func addConsumerCerts(t *testing.T, e *env, prefix string) []consumerCert {
	t.Helper()
	var out []consumerCert
	for _, kt := range consumerKeyTypes {
		name := fmt.Sprintf("%s-%s.example.com", prefix, kt)
		_, err := e.emu.admin.AddCert(ctxT(t), emulator.AddCertRequest{Name: name, KeyType: kt, IncludeRoot: true, KeyFirst: true})
		require.NoError(t, err, "adding %s", name)
		out = append(out, consumerCert{name, kt})
	}
	return out
}

// requireTool returns the path of a program, or skips the test saying
// which is missing.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("SKIPPED: %s is not installed (%v); nothing was checked against it", name, err)
	}
	return p
}

// runTool runs a program, bounded, and returns its combined output and
// exit error.
func runTool(t *testing.T, stdin string, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = baseEnv(t.TempDir())
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out after %s: %w", filepath.Base(bin), toolTimeout, err)
	}
	return string(out), err
}

// readKeystore reads certs/<name> in a keystore format through Vault's
// HTTP API and writes the decoded keystore to a file.
func readKeystore(t *testing.T, e *env, name string, query map[string][]string) (string, map[string]any) {
	t.Helper()
	s := readCert(t, e.vault, name, query)
	b64 := str(t, s.Data, "certificate")
	raw, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err, "certificate of %s %v is not base64", name, query)
	f := filepath.Join(t.TempDir(), "keystore")
	require.NoError(t, os.WriteFile(f, raw, 0o600))
	return f, s.Data
}

// pemCerts decodes every CERTIFICATE block of PEM text.
func pemCerts(t *testing.T, text string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, block := range pemBlocksOf(text, "CERTIFICATE") {
		b, _ := pem.Decode([]byte(block))
		c, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		out = append(out, c)
	}
	return out
}

// TestKeystoreConsumers reads format=pkcs12_bundle and jks_bundle through
// a real Vault, for an RSA, an EC and an Ed25519 certificate, and opens
// them with this machine's OpenSSL and keytool: the PKCS#12 file holds the
// key, the leaf and the chain (openssl pkcs12), and so does the JKS's one
// PrivateKeyEntry (keytool -list -v), under the default alias "1" and
// password "changeit" or the ones asked for.
func TestKeystoreConsumers(t *testing.T) {
	t.Parallel()
	openssl := requireTool(t, "openssl")
	keytool := requireTool(t, "keytool")
	e := newEnv(t)
	certs := addConsumerCerts(t, e, "ks")
	if v, err := runTool(t, "", openssl, "version"); err == nil {
		t.Logf("openssl: %s", strings.TrimSpace(v))
	}

	for _, c := range certs {
		t.Run(string(c.kt), func(t *testing.T) {
			pemData := readCert(t, e.vault, c.name, nil).Data
			leaf := pemCerts(t, str(t, pemData, "certificate"))[0]
			chain := pemCerts(t, strings.Join(strList(t, pemData, "ca_chain"), "\n"))
			require.Len(t, chain, 2, "intermediate and root")

			t.Run("openssl pkcs12", func(t *testing.T) {
				for _, tc := range []struct {
					encoder, password string
					args              []string
				}{
					{"", "changeit", nil}, // the default: modern2023
					{"modern2023", "an0ther-pw", nil},
					{"legacy_des", "changeit", nil},
					{"legacy_rc2", "changeit", []string{"-legacy"}}, // OpenSSL 3 reads RC2 only with its legacy provider
				} {
					q := map[string][]string{"format": {"pkcs12_bundle"}}
					if tc.encoder != "" {
						q["pkcs12_encoder"] = []string{tc.encoder}
					}
					if tc.password != "changeit" {
						q["pkcs12_password"] = []string{tc.password}
					}
					f, d := readKeystore(t, e, c.name, q)
					assert.Equal(t, pemData["private_key"], d["private_key"], "the other fields stay PEM")
					args := append([]string{"pkcs12", "-in", f, "-passin", "pass:" + tc.password, "-noenc"}, tc.args...)
					out, err := runTool(t, "", openssl, args...)
					require.NoError(t, err, "openssl %s (encoder %q):\n%s", strings.Join(args, " "), tc.encoder, out)
					got := pemCerts(t, out)
					require.Len(t, got, 3, "leaf, intermediate, root (encoder %q):\n%s", tc.encoder, out)
					assert.True(t, got[0].Equal(leaf), "the first certificate is the leaf")
					assert.Contains(t, out, "PRIVATE KEY-----", "the key is in the file (encoder %q)", tc.encoder)
					keyOut, err := runTool(t, out, openssl, "pkey", "-pubout")
					require.NoError(t, err, "openssl pkey of the decoded key:\n%s", keyOut)
					leafPub, err := runTool(t, strings.Join(pemBlocksOf(out, "CERTIFICATE")[:1], ""), openssl, "x509", "-noout", "-pubkey")
					require.NoError(t, err, "openssl x509 -pubkey:\n%s", leafPub)
					assert.Equal(t, strings.TrimSpace(leafPub), strings.TrimSpace(keyOut), "the key matches the leaf (encoder %q)", tc.encoder)
					_, err = runTool(t, "", openssl, "pkcs12", "-in", f, "-passin", "pass:wrong", "-noenc")
					assert.Error(t, err, "openssl opened it with a wrong password")
				}
				// modern2026 (PBMAC1), Vault PKI's default, is why ours is
				// modern2023: recorded, not required, as a newer OpenSSL
				// reads it.
				f, _ := readKeystore(t, e, c.name, map[string][]string{"format": {"pkcs12_bundle"}, "pkcs12_encoder": {"modern2026"}})
				out, err := runTool(t, "", openssl, "pkcs12", "-in", f, "-passin", "pass:changeit", "-noenc")
				t.Logf("openssl pkcs12 on pkcs12_encoder=modern2026: err=%v, %s", err, firstLine(out))
			})

			t.Run("keytool", func(t *testing.T) {
				for _, tc := range []struct{ alias, password string }{{"1", "changeit"}, {"tomcat", "s3cret-pw"}} {
					q := map[string][]string{"format": {"jks_bundle"}}
					if tc.alias != "1" {
						q["jks_private_key_alias"] = []string{tc.alias}
						q["jks_password"] = []string{tc.password}
					}
					f, _ := readKeystore(t, e, c.name, q)
					out, err := runTool(t, "", keytool, "-list", "-keystore", f, "-storetype", "JKS", "-storepass", tc.password)
					require.NoError(t, err, "keytool -list:\n%s", out)
					assert.Contains(t, out, "Keystore type: JKS")
					assert.Contains(t, out, "Your keystore contains 1 entry")
					assert.Regexp(t, regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(tc.alias)+`, .*, PrivateKeyEntry,`), out)
					v, err := runTool(t, "", keytool, "-list", "-v", "-keystore", f, "-storetype", "JKS", "-storepass", tc.password, "-alias", tc.alias)
					require.NoError(t, err, "keytool -list -v:\n%s", v)
					assert.Contains(t, v, "Certificate chain length: 3", "leaf, intermediate, root")
					assert.Contains(t, v, "Serial number: "+strings.ToLower(leaf.SerialNumber.Text(16)))
					_, err = runTool(t, "", keytool, "-list", "-keystore", f, "-storetype", "JKS", "-storepass", "wrong-pw")
					assert.Error(t, err, "keytool opened it with a wrong password")
				}
				// keytool reads the PKCS#12 file too (Java 12+ reads modern2023).
				f, _ := readKeystore(t, e, c.name, map[string][]string{"format": {"pkcs12_bundle"}})
				out, err := runTool(t, "", keytool, "-list", "-keystore", f, "-storetype", "PKCS12", "-storepass", "changeit")
				require.NoError(t, err, "keytool -list on the PKCS#12:\n%s", out)
				assert.Contains(t, out, "PrivateKeyEntry")
				// And modern2026: recorded (Java 26+ reads PBMAC1).
				f, _ = readKeystore(t, e, c.name, map[string][]string{"format": {"pkcs12_bundle"}, "pkcs12_encoder": {"modern2026"}})
				out, err = runTool(t, "", keytool, "-list", "-keystore", f, "-storetype", "PKCS12", "-storepass", "changeit")
				t.Logf("keytool -list on pkcs12_encoder=modern2026: err=%v, %s", err, firstLine(out))
			})
		})
	}

	// Two reads of one certificate give the same keystore bytes: Agent and
	// VSO see a change only when the certificate changes.
	a, _ := readKeystore(t, e, certs[0].name, map[string][]string{"format": {"jks_bundle"}})
	b, _ := readKeystore(t, e, certs[0].name, map[string][]string{"format": {"jks_bundle"}})
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	assert.Equal(t, ab, bb, "two reads gave different keystores")

	// The recipe of docs/java.md for a password: `vault write` sends it in the
	// body (the same read, granted as update), and keytool opens the store.
	w := e.vault.cli(e.vault.rootToken, "", "write", "-field=certificate", mount+"/certs/"+certs[0].name,
		"format=jks_bundle", "jks_password=body-pw-s3cret", "jks_private_key_alias=tomcat")
	require.Zero(t, w.code, "%s", w)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(w.stdout))
	require.NoError(t, err, "vault write -field=certificate is not base64")
	jks := filepath.Join(t.TempDir(), "body.jks")
	require.NoError(t, os.WriteFile(jks, raw, 0o600))
	out, err := runTool(t, "", keytool, "-list", "-keystore", jks, "-storetype", "JKS", "-storepass", "body-pw-s3cret")
	require.NoError(t, err, "keytool -list on the store `vault write` gave:\n%s", out)
	assert.Regexp(t, regexp.MustCompile(`(?m)^tomcat, .*, PrivateKeyEntry,`), out)

	// An unknown profile is a 400 that names the accepted ones, and no
	// password shows up in it.
	r := mustRaw(t, e.vault, e.vault.rootToken, "GET", mount+"/certs/"+certs[0].name,
		map[string][]string{"format": {"pkcs12_bundle"}, "pkcs12_encoder": {"modern2020"}, "pkcs12_password": {"pw-never-echoed"}}, nil)
	assert.Equal(t, 400, r.status, "%s", r)
	assert.Contains(t, r.says(), `pkcs12_encoder must be one of "modern2023", "legacy_des", "legacy_rc2", "modern2026"`)
	assert.NotContains(t, string(r.body), "pw-never-echoed")
	logs, _ := os.ReadFile(e.vault.logPath)
	assert.NotContains(t, string(logs), "pw-never-echoed", "a password in Vault's log")
	assert.NotContains(t, string(logs), "body-pw-s3cret", "a password in Vault's log")
}

// pemBlocksOf returns the PEM blocks of one type in text, each as text.
func pemBlocksOf(text, typ string) []string {
	var out []string
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		if b.Type == typ {
			out = append(out, string(pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes})))
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
