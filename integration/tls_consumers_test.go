package integration

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TLS servers fed from the engine, and clients that trust only the
// emulator's root: a Java server on the PKCS#12 file (and on the JKS), and
// openssl s_server on full_chain + private_key.

// emulatorRoot is the root every consumer certificate chains to: the last
// of ca_chain (their files hold it).
func emulatorRoot(t *testing.T, d map[string]any) *x509.Certificate {
	t.Helper()
	chain := strList(t, d, "ca_chain")
	require.NotEmpty(t, chain)
	root := pemCerts(t, chain[len(chain)-1])[0]
	require.Equal(t, root.RawSubject, root.RawIssuer, "the last of ca_chain is not a root")
	return root
}

// handshake connects to addr trusting only root, for serverName, and
// returns the certificates the server sent; with hello it also sends a
// line and returns the server's answer.
func handshake(addr, serverName string, root *x509.Certificate, hello bool) ([]*x509.Certificate, string, error) {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	peers := conn.ConnectionState().PeerCertificates
	if !hello {
		return peers, "", nil
	}
	if _, err := conn.Write([]byte("hi\n")); err != nil {
		return peers, "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return peers, strings.TrimSpace(line), err
}

// TestJavaTLSServerFromKeystore loads format=pkcs12_bundle (and
// jks_bundle) as they come out of Vault into a Java TLS server
// (testdata/Server.java on this machine's JDK) and completes a handshake
// from a Go client that trusts only the emulator's root, for an RSA, an
// EC and an Ed25519 certificate: the key entry carries the leaf and the
// intermediate the client needs.
func TestJavaTLSServerFromKeystore(t *testing.T) {
	t.Parallel()
	java := requireTool(t, "java")
	e := newEnv(t)
	certs := addConsumerCerts(t, e, "java")
	src, err := filepath.Abs(filepath.Join("testdata", "Server.java"))
	require.NoError(t, err)

	for _, c := range certs {
		for _, ks := range []struct{ format, storeType string }{{"pkcs12_bundle", "PKCS12"}, {"jks_bundle", "JKS"}} {
			t.Run(string(c.kt)+"/"+ks.format, func(t *testing.T) {
				pemData := readCert(t, e.vault, c.name, nil).Data
				root := emulatorRoot(t, pemData)
				leaf := pemCerts(t, str(t, pemData, "certificate"))[0]
				f, _ := readKeystore(t, e, c.name, map[string][]string{"format": {ks.format}})

				dir := t.TempDir()
				portFile := filepath.Join(dir, "port")
				logPath := filepath.Join(dir, "java.log")
				p, err := startProc("java Server.java", logPath, baseEnv(dir), java, src, f, "changeit", ks.storeType, portFile)
				require.NoError(t, err)
				t.Cleanup(func() {
					if t.Failed() {
						t.Logf("---- %s ----\n%s", logPath, tail(logPath, 40))
					}
					_ = p.stop()
				})
				var port int
				require.NoError(t, poll(toolTimeout, "the Java server's port file", p, func() (bool, error) {
					b, err := os.ReadFile(portFile)
					if err != nil {
						return false, err
					}
					port, err = strconv.Atoi(strings.TrimSpace(string(b)))
					return err == nil, err
				}))
				peers, answer, err := handshake(fmt.Sprintf("127.0.0.1:%d", port), c.name, root, true)
				require.NoError(t, err, "TLS handshake with the Java server (%s, %s)", c.kt, ks.format)
				require.NotEmpty(t, peers)
				assert.True(t, peers[0].Equal(leaf), "the Java server sent another leaf")
				assert.GreaterOrEqual(t, len(peers), 2, "the Java server sent no intermediate")
				assert.Equal(t, "hello CN="+c.name, answer)
				t.Logf("%s %s: Java server handshake ok, %d certificates sent; %s", c.kt, ks.format, len(peers), firstLine(grepLine(logPath, "handshake")))
			})
		}
	}
}

// TestOpenSSLServerFromFullChain serves full_chain and private_key with
// openssl s_server and checks them with openssl s_client
// -verify_return_error trusting only the emulator's root, for every key
// type. Serving "certificate" (the leaf alone) instead fails the same
// check: the intermediate full_chain adds is what the client needs.
func TestOpenSSLServerFromFullChain(t *testing.T) {
	t.Parallel()
	openssl := requireTool(t, "openssl")
	e := newEnv(t)
	certs := addConsumerCerts(t, e, "nginx")

	for _, c := range certs {
		t.Run(string(c.kt), func(t *testing.T) {
			d := readCert(t, e.vault, c.name, nil).Data
			root := emulatorRoot(t, d)
			full := str(t, d, "full_chain")
			fc := pemCerts(t, full)
			require.Len(t, fc, 2, "full_chain: leaf and intermediate, no root")
			assert.Equal(t, str(t, d, "certificate")+"\n"+str(t, d, "issuing_ca"), full)

			dir := t.TempDir()
			write := func(name, content string) string {
				p := filepath.Join(dir, name)
				require.NoError(t, os.WriteFile(p, []byte(content+"\n"), 0o600))
				return p
			}
			rootFile := write("root.pem", string(pemOf(root)))
			keyFile := write("key.pem", str(t, d, "private_key"))

			// serve starts s_server on a certificate file as nginx's
			// ssl_certificate reads it: the first certificate is the
			// server's, the ones after it are sent with it (s_server
			// takes those as -cert_chain).
			serve := func(name, certs string) (string, func()) {
				blocks := pemBlocksOf(certs, "CERTIFICATE")
				args := []string{"s_server", "-cert", write(name+"-leaf.pem", blocks[0]), "-key", keyFile, "-naccept", "10", "-quiet"}
				if len(blocks) > 1 {
					args = append(args, "-cert_chain", write(name+"-rest.pem", strings.Join(blocks[1:], "")))
				}
				port, err := freePort()
				require.NoError(t, err)
				addr := fmt.Sprintf("127.0.0.1:%d", port)
				logPath := filepath.Join(dir, name+"-s_server.log")
				p, err := startProc("openssl s_server", logPath, baseEnv(dir), openssl, append(args, "-accept", addr)...)
				require.NoError(t, err)
				require.NoError(t, poll(toolTimeout, "openssl s_server to listen", p, func() (bool, error) {
					conn, err := net.DialTimeout("tcp", addr, time.Second)
					if err != nil {
						return false, err
					}
					conn.Close()
					return true, nil
				}))
				return addr, func() {
					if t.Failed() {
						t.Logf("---- %s ----\n%s", logPath, tail(logPath, 20))
					}
					_ = p.stop()
				}
			}
			sClient := func(addr string) (string, error) {
				return runTool(t, "", openssl, "s_client", "-connect", addr, "-servername", c.name,
					"-CAfile", rootFile, "-verify_return_error", "-verify_hostname", c.name, "-brief")
			}

			addr, stop := serve("full_chain", full)
			defer stop()
			out, err := sClient(addr)
			require.NoError(t, err, "openssl s_client -verify_return_error against full_chain + private_key:\n%s", out)
			assert.Contains(t, out, "Verification: OK")
			peers, _, err := handshake(addr, c.name, root, false)
			require.NoError(t, err, "Go client trusting only the root, against full_chain")
			assert.Len(t, peers, 2)
			t.Logf("%s: s_client -verify_return_error: %s", c.kt, strings.Join(strings.Fields(grepText(out, "Verification")), " "))

			leafAddr, stopLeaf := serve("certificate", str(t, d, "certificate"))
			defer stopLeaf()
			out, err = sClient(leafAddr)
			require.Error(t, err, "s_client verified a server sending the leaf alone:\n%s", out)
			var ee interface{ ExitCode() int }
			if errors.As(err, &ee) {
				assert.NotEqual(t, 0, ee.ExitCode())
			}
		})
	}
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// grepLine returns the first line of the file at path that contains s.
func grepLine(path, s string) string {
	b, _ := os.ReadFile(path)
	return grepText(string(b), s)
}

func grepText(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
