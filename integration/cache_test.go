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
	const name = "cache.example.com"
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
		const cname = "concurrent.example.com"
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

	t.Run("NHN down: cached copy served with a warning", func(t *testing.T) {
		const uncached = "uncached.example.com"
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
		if r.status != 502 || !strings.Contains(msg, "503") {
			t.Errorf("read of an uncached name while NHN is down: %s; want 502 naming the upstream status", r)
		}
		assertNoSecret(t, e, "the error", string(r.body))
		if strings.Contains(msg, "PRIVATE KEY") {
			t.Errorf("the error holds key material: %s", msg)
		}
	})
}
