package integration

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
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
	if err != nil {
		t.Fatal(err)
	}
	calls := func() int64 { return e.emu.stats(t).FileCallsByName[name] }
	serialOf := func(query map[string][]string) string {
		t.Helper()
		return str(t, readCert(t, v, name, query).Data, "serial_number")
	}
	base := calls()

	if got := serialOf(nil); got != first.Serial {
		t.Fatalf("first read: serial %s, want %s", got, first.Serial)
	}
	if n := calls() - base; n != 1 {
		t.Fatalf("first read made %d downloads, want 1", n)
	}
	serialOf(nil)
	if got := strings.TrimSpace(mustCLI(t, v, "read", "-field=serial_number", mount+"/certs/"+name)); got != first.Serial {
		t.Errorf("vault read: serial %s", got)
	}
	if n := calls() - base; n != 1 {
		t.Fatalf("two more reads within cache_ttl made %d downloads in all, want still 1", n)
	}
	if got := serialOf(map[string][]string{"refresh": {"true"}}); got != first.Serial {
		t.Errorf("refresh=true: serial %s, want %s", got, first.Serial)
	}
	if n := calls() - base; n != 2 {
		t.Fatalf("refresh=true did not download (downloads %d, want 2)", n)
	}

	rotated, err := e.emu.admin.Rotate(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if got := serialOf(nil); got != first.Serial {
		t.Errorf("read after an upstream rotation, within cache_ttl: serial %s, want the cached %s", got, first.Serial)
	}
	if got := serialOf(map[string][]string{"refresh": {"true"}}); got != rotated.Serial {
		t.Errorf("refresh=true after the rotation: serial %s, want %s", got, rotated.Serial)
	}
	if got := serialOf(nil); got != rotated.Serial {
		t.Errorf("read after the refresh: serial %s, want %s", got, rotated.Serial)
	}
	if n := calls() - base; n != 3 {
		t.Errorf("downloads %d, want 3 (first read and two refreshes)", n)
	}

	t.Run("concurrent reads of an uncached name make one download", func(t *testing.T) {
		cname := "concurrent-" + run + ".example.com"
		c, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: cname})
		if err != nil {
			t.Fatal(err)
		}
		// Slow answers, so that every read arrives while the download runs.
		if err := e.emu.admin.SetLatency(ctx, 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
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
			if errs[i] != nil || serials[i] != c.Serial {
				t.Errorf("read %d: serial %q err %v", i, serials[i], errs[i])
			}
		}
		if got := e.emu.stats(t).FileCallsByName[cname] - before; got != 1 {
			t.Errorf("%d concurrent reads made %d downloads, want 1", n, got)
		}
	})

	t.Run("config changes drop the cache", func(t *testing.T) {
		const m = "nhncert-cache-drop"
		if err := e.enable(m); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.cli(v.rootToken, "", "secrets", "disable", m) })
		if err := e.configure(m); err != nil {
			t.Fatal(err)
		}
		downloads := func() int64 { return e.emu.stats(t).FileCallsByName["api.example.com"] }
		read := func(why string, wantDownload bool) {
			t.Helper()
			before := downloads()
			if s, err := v.client.Logical().Read(m + "/certs/api.example.com"); err != nil || s == nil {
				t.Fatalf("read (%s): %v", why, err)
			}
			if got := downloads() - before; (got == 1) != wantDownload || got > 1 {
				t.Errorf("read %s: %d downloads, want %v", why, got, map[bool]int{true: 1, false: 0}[wantDownload])
			}
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
		if err := e.configure(m); err != nil {
			t.Fatal(err)
		}
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
			if _, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: name}); err != nil {
				t.Fatal(err)
			}
			if err := e.emu.admin.SetFault(ctx, c.fault); err != nil {
				t.Fatal(err)
			}
			r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+name, nil, nil)
			_ = e.emu.admin.ClearFault(ctx)
			msg := strings.Join(r.errors(), " ")
			t.Logf("fault %s: %s", c.fault.Mode, r)
			if r.status != 502 || !strings.Contains(msg, c.want) {
				t.Errorf("fault %s: %s; want 502 mentioning %q", c.fault.Mode, r, c.want)
			}
			if strings.Contains(string(r.body), "PRIVATE KEY") || strings.Contains(string(r.body), "CERTIFICATE") {
				t.Errorf("fault %s: the error holds PEM material: %s", c.fault.Mode, r)
			}
			assertNoSecret(t, e, "the error", string(r.body))
			// Nothing was cached: the next read downloads the good file.
			before := e.emu.stats(t).FileCallsByName[name]
			if s, err := v.client.Logical().Read(mount + "/certs/" + name); err != nil || s == nil || len(s.Warnings) != 0 {
				t.Errorf("fault %s: read after the fault cleared: %v %v", c.fault.Mode, s, err)
			}
			if e.emu.stats(t).FileCallsByName[name] != before+1 {
				t.Errorf("fault %s: the read after the fault did not download: a bad file was cached", c.fault.Mode)
			}
		}
		// Revoked tokens: the plugin gets a new one.
		if err := e.emu.admin.RevokeTokens(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := v.client.Logical().ReadWithData(mount+"/certs/"+name, map[string][]string{"refresh": {"true"}}); err != nil {
			t.Errorf("refresh after NHN revoked the plugin's token: %v", err)
		}
	})

	t.Run("NHN down: cached copy served with a warning", func(t *testing.T) {
		uncached := "uncached-" + run + ".example.com"
		if _, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: uncached}); err != nil {
			t.Fatal(err)
		}
		if err := e.emu.admin.SetFault(ctx, emulator.Fault{Mode: emulator.FaultDown}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.emu.admin.ClearFault(ctxT(t)) })

		s := readCert(t, v, name, map[string][]string{"refresh": {"true"}})
		if got := s.Data["serial_number"]; got != rotated.Serial {
			t.Errorf("refresh=true while NHN is down: serial %v, want the cached %s", got, rotated.Serial)
		}
		w := strings.Join(s.Warnings, " ")
		if !strings.Contains(w, "stale") || !strings.Contains(w, "503") {
			t.Errorf("refresh=true while NHN is down: warnings %q; want one saying the copy may be stale and why (503)", s.Warnings)
		}
		assertNoSecret(t, e, "the warning", w)

		r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+uncached, nil, nil)
		msg := strings.Join(r.errors(), " ")
		t.Logf("uncached name while NHN is down: %s; cached name with refresh=true: warnings %q", r, s.Warnings)
		if r.status != 502 || !strings.Contains(msg, "503") {
			t.Errorf("read of an uncached name while NHN is down: %s; want 502 naming the upstream status", r)
		}
		assertNoSecret(t, e, "the error", string(r.body))
		if strings.Contains(msg, "PRIVATE KEY") {
			t.Errorf("the error holds key material: %s", msg)
		}
	})
}
