package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUpgrade upgrades a running Vault (file storage, initialised and
// unsealed) from the previous release to this build exactly as
// docs/install.md says (the new binary beside the old in the plugin
// directory, `vault plugin register -version`, `vault secrets tune
// -plugin-version`, `vault plugin reload`), with NHN down from before the
// upgrade to after it. The config, the cached certificates, the
// passphrase and the metrics of the cache carry over; reads of every
// certificate are answered all along; and no certificate is downloaded
// again (the emulator counts every download request, also those it
// answers with its outage).
//
// make release-check sets NHNCERT_PREV_PLUGIN_BIN and
// NHNCERT_PREV_VERSION: the release CHANGELOG.md names, built from its
// commit by scripts/release-prev.sh (git worktree); the new build is the
// linux/amd64 zip's binary (NHNCERT_RELEASE_DIST).
func TestUpgrade(t *testing.T) {
	d := requireRelease(t)
	prevBin, prevVersion := os.Getenv("NHNCERT_PREV_PLUGIN_BIN"), os.Getenv("NHNCERT_PREV_VERSION")
	if prevBin == "" || prevVersion == "" {
		t.Skip("NHNCERT_PREV_PLUGIN_BIN and NHNCERT_PREV_VERSION not set: make release-check builds the previous release")
	}
	require.NotEqual(t, prevVersion, d.version, "the upgrade needs two versions")
	newBin, newSHA := d.unzipBinary(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	e := newBareEnv(t, realVault)
	v := e.vault

	// The previous release, installed as docs/install.md says.
	prevCmd := pluginName + "_" + strings.TrimPrefix(prevVersion, "v")
	newCmd := pluginName + "_" + strings.TrimPrefix(d.version, "v")
	prevSHA, err := copyExecutable(prevBin, filepath.Join(v.pluginDir, prevCmd))
	require.NoError(t, err)
	mustCLI(t, v, "plugin", "register", "-sha256="+prevSHA, "-command="+prevCmd, "-version="+prevVersion, "secret", pluginName)
	mustCLI(t, v, "secrets", "enable", "-path="+mount, "-plugin-version="+prevVersion, pluginName)
	require.NoError(t, e.configure(mount))
	requireRunning(t, v, prevVersion, prevSHA)

	// A certificate whose key NHN holds encrypted, and its passphrase.
	pass := "itest-PASSPHRASE-" + randomHex(16)
	_, err = e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: "encrypted.example.com", KeyType: emulator.RSA, KeyPassphrase: pass, KeyEncryption: string(emulator.KeyLegacy)})
	require.NoError(t, err)
	r := v.cli(v.rootToken, pass, "write", mount+"/passphrases/encrypted.example.com", "passphrase=-")
	require.Equal(t, 0, r.code, "%s", r)

	names := []string{"example.com", "*.example.com", "encrypted.example.com"}
	type served struct{ serial, rotation, key string }
	before := map[string]served{}
	for _, n := range names {
		s := readCert(t, v, n, nil)
		before[n] = served{str(t, s.Data, "serial_number"), str(t, s.Data, "last_vault_rotation"), str(t, s.Data, "private_key")}
	}
	configBefore := mustCLI(t, v, "read", "-format=json", mount+"/config")
	passBefore := mustCLI(t, v, "read", "-field=updated_at", mount+"/passphrases/encrypted.example.com")
	metricsBefore := cacheMetrics(t, v)
	downloadsBefore := e.emu.stats(t).FileCallsByName
	for _, n := range names {
		require.Equal(t, int64(1), downloadsBefore[n], "%s: downloads before the upgrade", n)
	}

	// NHN goes down.
	require.NoError(t, e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}))

	// Reads of every certificate, all along.
	var reads, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for _, n := range names {
				select {
				case <-stop:
					return
				default:
				}
				rr, err := v.raw(v.rootToken, "GET", mount+"/certs/"+n, nil, nil)
				reads.Add(1)
				if err != nil || rr.status != 200 || strings.Contains(string(rr.body), `"warnings":[`) {
					failed.Add(1)
					failMu.Lock()
					failures = append(failures, time.Now().Format("15:04:05.000")+" "+n+": "+string(rr.body)+errString(err))
					failMu.Unlock()
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// The upgrade, as docs/install.md says.
	time.Sleep(time.Second)
	start := time.Now()
	_, err = copyExecutable(newBin, filepath.Join(v.pluginDir, newCmd))
	require.NoError(t, err)
	out := mustCLI(t, v, "plugin", "register", "-sha256="+newSHA, "-command="+newCmd, "-version="+d.version, "secret", pluginName)
	t.Logf("$ vault plugin register -sha256=%s -command=%s -version=%s secret %s\n%s", newSHA, newCmd, d.version, pluginName, out)
	out = mustCLI(t, v, "secrets", "tune", "-plugin-version="+d.version, mount+"/")
	t.Logf("$ vault secrets tune -plugin-version=%s %s/\n%s", d.version, mount, out)
	out = mustCLI(t, v, "plugin", "reload", "-plugin="+pluginName)
	t.Logf("$ vault plugin reload -plugin=%s\n%s", pluginName, out)
	took := time.Since(start)
	requireRunning(t, v, d.version, newSHA)
	time.Sleep(2 * time.Second) // reads go on after the reload
	close(stop)
	wg.Wait()
	failMu.Lock()
	require.Zero(t, failed.Load(), "reads not answered (or answered with a warning) during the upgrade, of %d:\n%s", reads.Load(), strings.Join(failures, "\n"))
	failMu.Unlock()

	// Still with NHN down: the same copies, from the cache.
	for _, n := range names {
		s := readCert(t, v, n, nil)
		assert.Empty(t, s.Warnings, "%s after the upgrade", n)
		got := served{str(t, s.Data, "serial_number"), str(t, s.Data, "last_vault_rotation"), str(t, s.Data, "private_key")}
		assert.Equal(t, before[n].serial, got.serial, "%s: serial after the upgrade", n)
		assert.Equal(t, before[n].rotation, got.rotation, "%s: last_vault_rotation after the upgrade (the copy downloaded before it)", n)
		assert.True(t, before[n].key == got.key, "%s: the private key changed over the upgrade", n)
	}
	requireConfigKept(t, jsonData(t, configBefore), jsonData(t, mustCLI(t, v, "read", "-format=json", mount+"/config")))
	assert.Equal(t, passBefore, mustCLI(t, v, "read", "-field=updated_at", mount+"/passphrases/encrypted.example.com"), "the passphrase over the upgrade")
	metricsAfter := cacheMetrics(t, v)
	assert.Equal(t, metricsBefore, metricsAfter, "the cache's metrics over the upgrade")
	downloadsAfter := e.emu.stats(t).FileCallsByName
	assert.Equal(t, downloadsBefore, downloadsAfter, "downloads from NHN (attempted ones included) over the upgrade")

	// NHN back: still nothing downloaded (the copies are fresh).
	require.NoError(t, e.emu.admin.ClearFault(ctx))
	for _, n := range names {
		s := readCert(t, v, n, nil)
		assert.Equal(t, before[n].serial, str(t, s.Data, "serial_number"), "%s with NHN back", n)
	}
	assert.Equal(t, downloadsBefore, e.emu.stats(t).FileCallsByName, "downloads with NHN back after the upgrade")

	t.Logf("upgrade %s -> %s (NHN down): register+tune+reload took %s; %d reads of %d certificates during it, %d failed; downloads per certificate before %v, after %v; cache metrics kept: %s",
		prevVersion, d.version, took.Round(time.Millisecond), reads.Load(), len(names), failed.Load(), downloadsBefore, downloadsAfter, strings.Join(metricsAfter, "; "))
}

// requireRunning waits until the mount runs version with the binary sha.
func requireRunning(t *testing.T, v *vaultServer, version, sha string) {
	t.Helper()
	var m map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var mounts map[string]map[string]any
		require.NoError(t, json.Unmarshal([]byte(mustCLI(t, v, "secrets", "list", "-detailed", "-format=json")), &mounts))
		m = mounts[mount+"/"]
		if m["running_plugin_version"] == version && m["running_sha256"] == sha {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	t.Fatalf("the mount runs %v (sha256 %v), want %s (%s)", m["running_plugin_version"], m["running_sha256"], version, sha)
}

// cacheMetrics returns the nhncert/metrics lines that describe what the
// engine holds (cached certificates and their expiry), sorted: what must
// carry over an upgrade. Counters start again with the new process.
func cacheMetrics(t *testing.T, v *vaultServer) []string {
	t.Helper()
	r := mustRaw(t, v, v.rootToken, "GET", mount+"/metrics", nil, nil)
	require.Equal(t, 200, r.status, "GET %s/metrics: %s", mount, r.body)
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "nhncert_cached_certificates") || strings.HasPrefix(l, "nhncert_certificate_expiry_timestamp_seconds") {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	require.NotEmpty(t, out, "nhncert/metrics has no cache families:\n%s", r.body)
	return out
}

// jsonData returns the "data" of a `vault read -format=json` answer.
// configAddedSince are the config fields the working tree has that the
// previous release (the CHANGELOG's newest) did not, with their defaults:
// a config written before the upgrade reads back with these added and
// every other field as it was.
var configAddedSince = map[string]any{"hosts_wildcards": true}

// requireConfigKept: the config read after the upgrade holds every field of
// the one before with its value, and nothing else but the new fields at
// their defaults.
func requireConfigKept(t *testing.T, before, after string) {
	t.Helper()
	var b, a map[string]any
	require.NoError(t, json.Unmarshal([]byte(before), &b))
	require.NoError(t, json.Unmarshal([]byte(after), &a))
	for k, want := range b {
		assert.Equal(t, want, a[k], "config field %s over the upgrade", k)
	}
	for k, got := range a {
		if _, had := b[k]; had {
			continue
		}
		def, known := configAddedSince[k]
		assert.True(t, known, "config field %s appeared over the upgrade and is not a new field", k)
		assert.Equal(t, def, got, "new config field %s after the upgrade: its default", k)
	}
}

func jsonData(t *testing.T, s string) string {
	t.Helper()
	var v struct {
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(s), &v))
	return string(v.Data)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}
