package integration

import (
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// TestList checks `vault list nhncert/certs` with 40+ certificates behind
// an emulator that answers at most 10 per page: every name, sorted, with
// key_info as NHN gives it, and the status parameter through HTTP.
func TestList(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault
	ctx := ctxT(t)
	if err := e.emu.admin.Seed(ctx, "list", 37); err != nil {
		t.Fatal(err)
	}
	certs, err := e.emu.admin.Certs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]emulator.AdminCert{}
	var all []string
	for _, c := range certs {
		byName[c.Name] = c
		all = append(all, c.Name)
	}
	sort.Strings(all)
	if len(all) < 40 {
		t.Fatalf("the emulator holds %d certificates; want 40+", len(all))
	}

	if err := e.emu.admin.ResetStats(ctx); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, v, "list", "-format=json", mount+"/certs")
	var cliKeys []string
	if err := json.Unmarshal([]byte(out), &cliKeys); err != nil {
		t.Fatalf("vault list -format=json: %v\n%s", err, out)
	}
	if st := e.emu.stats(t); st.ListCalls < int64((len(all)+9)/10) {
		t.Errorf("one vault list made %d upstream list calls; with %d certificates and pages of 10 it must page (want >= %d)",
			st.ListCalls, len(all), (len(all)+9)/10)
	}
	if !sort.StringsAreSorted(cliKeys) {
		t.Errorf("vault list is not sorted: %v", cliKeys)
	}
	for _, n := range all {
		if !slices.Contains(cliKeys, n) && n != "expired.example.com" {
			t.Errorf("vault list misses %q", n)
		}
	}
	if slices.Contains(cliKeys, "expired.example.com") {
		t.Errorf("vault list (default status unexpired) shows expired.example.com")
	}
	if len(cliKeys) != len(all)-1 {
		t.Errorf("vault list shows %d names; want %d (all but the expired one)", len(cliKeys), len(all)-1)
	}

	t.Run("plain table", func(t *testing.T) {
		out := mustCLI(t, v, "list", mount+"/certs")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 3 || strings.TrimSpace(lines[0]) != "Keys" {
			t.Fatalf("vault list output:\n%s", out)
		}
		if got := lines[2:]; !reflect.DeepEqual(got, cliKeys) {
			t.Errorf("vault list table shows %v; -format=json shows %v", got, cliKeys)
		}
	})

	t.Run("key_info", func(t *testing.T) {
		keys, info := listKeys(t, mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", nil, nil))
		if !reflect.DeepEqual(keys, cliKeys) {
			t.Errorf("LIST over HTTP gives %v; the CLI %v", keys, cliKeys)
		}
		for _, k := range keys {
			ki, ok := info[k]
			if !ok {
				t.Errorf("key_info has no entry for %q", k)
				continue
			}
			c := byName[k]
			want := map[string]any{
				"authority":           c.Authority,
				"domains":             toAnySlice(c.Domains),
				"signature_algorithm": c.SignatureAlgorithm,
				"file_creation_date":  c.FileCreationDate,
				"expiration_date":     c.ExpirationDate,
			}
			got := map[string]any{}
			for f := range want {
				got[f] = ki[f]
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("key_info[%q]:\n got %v\nwant %v", k, got, want)
			}
		}
		if len(info) != len(keys) {
			t.Errorf("key_info has %d entries for %d keys", len(info), len(keys))
		}
		// The CLI shows them too.
		out := mustCLI(t, v, "list", "-detailed", mount+"/certs")
		for _, s := range []string{"authority", "domains", "signature_algorithm", "file_creation_date", "expiration_date", "SHA256withECDSA", "list00036.example.com"} {
			if !strings.Contains(out, s) {
				t.Errorf("vault list -detailed does not show %q:\n%s", s, out)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		// LIST with the parameter in the query string (as `curl -X LIST`
		// sends it), and GET ?list=true (as the Go API client sends it).
		allKeys, _ := listKeys(t, mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"status": {"all"}}, nil))
		if !reflect.DeepEqual(allKeys, all) {
			t.Errorf("LIST ?status=all:\n got %v\nwant %v", allKeys, all)
		}
		upper, _ := listKeys(t, mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"status": {"ALL"}}, nil))
		if !reflect.DeepEqual(upper, all) {
			t.Errorf("LIST ?status=ALL (case-insensitive):\n got %v\nwant %v", upper, all)
		}
		expired, info := listKeys(t, mustRaw(t, v, v.rootToken, "GET", mount+"/certs", url.Values{"list": {"true"}, "status": {"expired"}}, nil))
		if !reflect.DeepEqual(expired, []string{"expired.example.com"}) {
			t.Errorf("GET ?list=true&status=expired: %v, want [expired.example.com]", expired)
		}
		if ki := info["expired.example.com"]; ki == nil || ki["expiration_date"] != byName["expired.example.com"].ExpirationDate {
			t.Errorf("key_info of expired.example.com: %v", ki)
		}
		unexpired, _ := listKeys(t, mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"status": {"Unexpired"}}, nil))
		if !reflect.DeepEqual(unexpired, cliKeys) {
			t.Errorf("LIST ?status=Unexpired differs from the default list")
		}
		// The API client has no List with parameters; a read with
		// list=true is the same request.
		s, err := v.client.Logical().ReadWithData(mount+"/certs", map[string][]string{"list": {"true"}, "status": {"all"}})
		if err != nil || s == nil {
			t.Fatalf("api ReadWithData list=true status=all: %v", err)
		}
		if n := len(s.Data["keys"].([]any)); n != len(all) {
			t.Errorf("api ReadWithData list=true status=all: %d keys, want %d", n, len(all))
		}
		r := mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", url.Values{"status": {"bogus"}}, nil)
		if r.status != 400 || !strings.Contains(strings.Join(r.errors(), " "), "status") {
			t.Errorf("LIST ?status=bogus: %s, want 400 naming status", r)
		}
	})

	t.Run("v1.1 lists no domains", func(t *testing.T) {
		const m = "nhncert-v11"
		if err := e.enable(m); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.cli(v.rootToken, "", "secrets", "disable", m) })
		if err := e.configure(m, "api_version=v1.1"); err != nil {
			t.Fatal(err)
		}
		keys, info := listKeys(t, mustRaw(t, v, v.rootToken, "LIST", m+"/certs", nil, nil))
		if !reflect.DeepEqual(keys, cliKeys) {
			t.Errorf("v1.1 list differs from v1.3:\n got %v\nwant %v", keys, cliKeys)
		}
		for _, k := range keys {
			d, ok := info[k]["domains"].([]any)
			if !ok || len(d) != 0 {
				t.Errorf("v1.1 key_info[%q].domains = %#v; want an empty list", k, info[k]["domains"])
			}
		}
		s, err := v.client.Logical().Read(m + "/certs/example.com")
		if err != nil || s == nil || s.Data["common_name"] != "example.com" {
			t.Errorf("read through v1.1: %v, %v", s, err)
		}
	})
}

func toAnySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
