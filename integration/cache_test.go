package integration

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCache checks the cache through a real Vault: a second read does not
// reach NHN, refresh=true does, a rotation upstream shows after a refresh,
// concurrent reads of an uncached name make one download, and a cached
// certificate is served with a warning while NHN is down.
func TestCache(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault
	ctx := ctxT(t)
	// Names of this run only, so that -count=N starts with an empty cache.
	run := randomHex(3)
	name := "cache-" + run + ".example.com"
	first, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: name})
	require.NoError(t, err)
	calls := func() int64 { return e.emu.stats(t).FileCallsByName[name] }
	serialOf := func(query map[string][]string) string {
		t.Helper()
		return str(t, readCert(t, v, name, query).Data, "serial_number")
	}
	base := calls()

	require.Equal(t, first.Serial, serialOf(nil), "first read: serial")
	require.Equal(t, int64(1), calls()-base, "first read: downloads")
	serialOf(nil)
	assert.Equal(t, first.Serial, strings.TrimSpace(mustCLI(t, v, "read", "-field=serial_number", mount+"/certs/"+name)), "vault read: serial")
	require.Equal(t, int64(1), calls()-base, "two more reads within cache_ttl: downloads in all, want still 1")
	assert.Equal(t, first.Serial, serialOf(map[string][]string{"refresh": {"true"}}), "refresh=true: serial")
	require.Equal(t, int64(2), calls()-base, "refresh=true did not download (downloads, want 2)")

	rotated, err := e.emu.admin.Rotate(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, first.Serial, serialOf(nil), "read after an upstream rotation, within cache_ttl: serial, want the cached one")
	assert.Equal(t, rotated.Serial, serialOf(map[string][]string{"refresh": {"true"}}), "refresh=true after the rotation: serial")
	assert.Equal(t, rotated.Serial, serialOf(nil), "read after the refresh: serial")
	assert.Equal(t, int64(3), calls()-base, "downloads, want 3 (first read and two refreshes)")

	t.Run("concurrent reads of an uncached name make one download", func(t *testing.T) {
		cname := "concurrent-" + run + ".example.com"
		c, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: cname})
		require.NoError(t, err)
		// Slow answers, so that every read arrives while the download runs.
		require.NoError(t, e.emu.admin.SetLatency(ctx, 500*time.Millisecond))
		t.Cleanup(func() { _ = e.emu.admin.SetLatency(ctxT(t), 0) })
		before := e.emu.stats(t).FileCallsByName[cname]
		const n = 16
		var wg sync.WaitGroup
		serials := make([]string, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := v.client.Logical().Read(mount + "/certs/" + cname)
				if err == nil && s != nil {
					serials[i], _ = s.Data["serial_number"].(string)
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i := range n {
			assert.NoError(t, errs[i], "read %d", i)
			assert.Equal(t, c.Serial, serials[i], "read %d: serial", i)
		}
		assert.Equal(t, int64(1), e.emu.stats(t).FileCallsByName[cname]-before, "%d concurrent reads: downloads, want 1", n)
	})

	t.Run("config changes drop the cache", func(t *testing.T) {
		const m = "nhncert-cache-drop"
		require.NoError(t, e.enable(m))
		t.Cleanup(func() { v.cli(v.rootToken, "", "secrets", "disable", m) })
		require.NoError(t, e.configure(m))
		downloads := func() int64 { return e.emu.stats(t).FileCallsByName["api.example.com"] }
		read := func(why string, wantDownload bool) {
			t.Helper()
			before := downloads()
			s, err := v.client.Logical().Read(m + "/certs/api.example.com")
			require.NoError(t, err, "read (%s)", why)
			require.NotNil(t, s, "read (%s)", why)
			assert.Equal(t, map[bool]int64{true: 1, false: 0}[wantDownload], downloads()-before, "read %s: downloads", why)
		}
		read("the first time", true)
		read("again", false)
		mustCLI(t, v, "write", m+"/config", "cache_ttl=2h")
		read("after a cache_ttl change", false)
		// The same emulator under another name: a different endpoint.
		other := strings.Replace(e.emu.url, "127.0.0.1", "localhost", 1)
		mustCLI(t, v, "write", m+"/config", "endpoint="+other, "auth_endpoint="+other)
		read("after an endpoint change", true)
		read("again", false)
		mustCLI(t, v, "delete", m+"/config")
		require.NoError(t, e.configure(m))
		read("after the config was deleted and written again", true)
	})

	t.Run("bad files and NHN errors are 502 and never cached", func(t *testing.T) {
		for _, c := range []struct {
			fault emulator.Fault
			want  string
		}{
			{emulator.Fault{Mode: emulator.FaultMismatch, Target: emulator.TargetFiles}, "match"},
			{emulator.Fault{Mode: emulator.FaultBadPEM, Target: emulator.TargetFiles}, "PEM"},
			{emulator.Fault{Mode: emulator.FaultResult, Target: emulator.TargetFiles, ResultCode: 52003}, "52003"},
		} {
			name := "bad-" + string(c.fault.Mode) + "-" + run + ".example.com"
			_, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: name})
			require.NoError(t, err)
			require.NoError(t, e.emu.admin.SetFault(ctx, c.fault))
			r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+name, nil, nil)
			_ = e.emu.admin.ClearFault(ctx)
			msg := strings.Join(r.errors(), " ")
			t.Logf("fault %s: %s", c.fault.Mode, r)
			assert.Equal(t, 502, r.status, "fault %s: %s; want 502 mentioning %q", c.fault.Mode, r, c.want)
			assert.Contains(t, msg, c.want, "fault %s: %s; want 502 mentioning %q", c.fault.Mode, r, c.want)
			for _, pem := range []string{"PRIVATE KEY", "CERTIFICATE"} {
				assert.NotContains(t, string(r.body), pem, "fault %s: the error holds PEM material", c.fault.Mode)
			}
			assertNoSecret(t, e, "the error", string(r.body))
			// Nothing was cached: the next read downloads the good file.
			before := e.emu.stats(t).FileCallsByName[name]
			s, err := v.client.Logical().Read(mount + "/certs/" + name)
			if assert.NoError(t, err, "fault %s: read after the fault cleared", c.fault.Mode) && assert.NotNil(t, s, "fault %s: read after the fault cleared", c.fault.Mode) {
				assert.Empty(t, s.Warnings, "fault %s: read after the fault cleared", c.fault.Mode)
			}
			assert.Equal(t, before+1, e.emu.stats(t).FileCallsByName[name], "fault %s: the read after the fault did not download: a bad file was cached", c.fault.Mode)
		}
		// Revoked tokens: the plugin gets a new one.
		require.NoError(t, e.emu.admin.RevokeTokens(ctx))
		_, err := v.client.Logical().ReadWithData(mount+"/certs/"+name, map[string][]string{"refresh": {"true"}})
		assert.NoError(t, err, "refresh after NHN revoked the plugin's token")
	})

	t.Run("NHN down: cached copy served with a warning", func(t *testing.T) {
		uncached := "uncached-" + run + ".example.com"
		_, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: uncached})
		require.NoError(t, err)
		require.NoError(t, e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}))
		t.Cleanup(func() { _ = e.emu.admin.ClearFault(ctxT(t)) })

		s := readCert(t, v, name, map[string][]string{"refresh": {"true"}})
		assert.Equal(t, rotated.Serial, s.Data["serial_number"], "refresh=true while NHN is down: serial, want the cached one")
		w := strings.Join(s.Warnings, " ")
		for _, want := range []string{"stale", "503"} {
			assert.Contains(t, w, want, "refresh=true while NHN is down: warnings; want one saying the copy may be stale and why (503)")
		}
		assertNoSecret(t, e, "the warning", w)

		r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+uncached, nil, nil)
		msg := strings.Join(r.errors(), " ")
		t.Logf("uncached name while NHN is down: %s; cached name with refresh=true: warnings %q", r, s.Warnings)
		assert.Equal(t, 502, r.status, "read of an uncached name while NHN is down: %s; want 502 naming the upstream status", r)
		assert.Contains(t, msg, "503", "read of an uncached name while NHN is down: %s; want 502 naming the upstream status", r)
		assertNoSecret(t, e, "the error", string(r.body))
		assert.NotContains(t, msg, "PRIVATE KEY", "the error holds key material")
	})
}
