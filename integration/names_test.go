package integration

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNames checks, through a real Vault and its CLI, the certificate names
// NHN allows since names need not be the CN (release of 2025-11-25):
// names with a space, Hangul, '%', '?', '#' and parentheses are listed
// and read (the CLI takes the name as it is, in quotes; the HTTP API
// takes it percent-encoded as one path segment), each reaches NHN as
// exactly that name, a name with '/' is refused with 400 and never
// reaches NHN, a policy on "nhncert/certs/example.com (new)" grants that
// certificate only, and `vault list -detailed` shows certificate_id.
func TestNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.vault
	ctx := ctxT(t)
	// The demo set has "example.com (new)" and "웹 서버 인증서"; these
	// add the punctuation that URLs and the CLI treat specially.
	extra := []string{"100% wild", "a?b=c#d", "예시 (test) [v2] @+,;=~'"}
	for _, n := range extra {
		_, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: n, DNSNames: []string{"names.example.com"}})
		require.NoError(t, err, "adding %q to the emulator", n)
	}
	names := append([]string{"example.com (new)", "웹 서버 인증서"}, extra...)
	certs := emulatorCerts(t, e)

	t.Run("listed with certificate_id", func(t *testing.T) {
		out := mustCLI(t, v, "list", "-detailed", "-format=json", mount+"/certs")
		var list struct {
			Data struct {
				Keys    []string                  `json:"keys"`
				KeyInfo map[string]map[string]any `json:"key_info"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &list), "vault list -detailed -format=json:\n%s", out)
		for _, n := range names {
			assert.Contains(t, list.Data.Keys, n, "vault list -detailed")
			info := list.Data.KeyInfo[n]
			if assert.NotNil(t, info, "key_info of %q", n) {
				assert.Equal(t, float64(certs[n].ID), info["certificate_id"], "key_info of %q: certificate_id is NHN's certificateId, a JSON number", n)
			}
		}
		table := mustCLI(t, v, "list", "-detailed", mount+"/certs")
		assert.Contains(t, table, "certificate_id", "vault list -detailed shows the column:\n%s", table)
		assert.Contains(t, table, "웹 서버 인증서", "vault list -detailed:\n%s", table)
		t.Logf("vault list -detailed %s/certs:\n%s", mount, table)
	})

	t.Run("read through the CLI and the API", func(t *testing.T) {
		require.NoError(t, e.emu.admin.ResetStats(ctx))
		for _, n := range names {
			c := v.cli(v.rootToken, "", "read", "-format=json", mount+"/certs/"+n)
			require.Equal(t, 0, c.code, "vault read %q: %s", mount+"/certs/"+n, c)
			var s struct {
				Data map[string]any `json:"data"`
			}
			require.NoError(t, json.Unmarshal([]byte(c.stdout), &s), "vault read %q", n)
			assert.True(t, strings.HasPrefix(str(t, s.Data, "certificate"), "-----BEGIN CERTIFICATE-----"), "vault read %q: certificate", n)
			assert.Equal(t, float64(certs[n].ID), s.Data["certificate_id"], "vault read %q: certificate_id", n)

			// The Go API client escapes the path as the CLI does.
			sec, err := v.client.Logical().Read(mount + "/certs/" + n)
			require.NoError(t, err, "API read %q", n)
			require.NotNil(t, sec, "API read %q", n)
			assert.Equal(t, s.Data["certificate"], sec.Data["certificate"], "API read %q", n)

			// Raw HTTP: the name as one percent-encoded segment.
			r := mustRaw(t, v, v.rootToken, "GET", mount+"/metadata/"+url.PathEscape(n), nil, nil)
			assert.Equal(t, 200, r.status, "GET /v1/%s/metadata/%s: %s", mount, url.PathEscape(n), r)
		}
		st := e.emu.stats(t)
		for _, n := range names {
			assert.Equal(t, int64(1), st.FileCallsByName[n], "%q: one download from NHN, under exactly that name (downloads by name: %v)", n, st.FileCallsByName)
		}
	})

	t.Run("spaces around a name: the HTTP API, not the CLI", func(t *testing.T) {
		_, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: " padded ", DNSNames: []string{"names.example.com"}})
		require.NoError(t, err)
		r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/%20padded%20", nil, nil)
		assert.Equal(t, 200, r.status, "GET /v1/%s/certs/%%20padded%%20: %s", mount, r)
		c := v.cli(v.rootToken, "", "read", mount+"/certs/ padded ")
		assert.Equal(t, 2, c.code, "vault read trims the spaces around its path, so it asks for \"padded\": %s", c)
	})

	t.Run("a name with a slash is refused and never reaches NHN", func(t *testing.T) {
		_, err := e.emu.admin.AddCert(ctx, emulator.AddCertRequest{Name: "a/b", DNSNames: []string{"names.example.com"}})
		require.NoError(t, err)
		before := e.emu.stats(t)
		for _, raw := range []string{"a/b", "a%2Fb", "a%2fb"} {
			r := mustRaw(t, v, v.rootToken, "GET", mount+"/certs/"+raw, nil, nil)
			assert.Equal(t, 400, r.status, "GET /v1/%s/certs/%s: %s", mount, raw, r)
			assert.Contains(t, r.says(), `must not contain '/'`, "GET /v1/%s/certs/%s", mount, raw)
		}
		c := v.cli(v.rootToken, "", "read", mount+"/certs/a/b")
		assert.NotEqual(t, 0, c.code, "vault read %s/certs/a/b: %s", mount, c)
		assert.Contains(t, c.stderr, "Code: 400", "vault read %s/certs/a/b", mount)
		after := e.emu.stats(t)
		assert.Equal(t, before.FileCalls, after.FileCalls, "a refused name reached NHN: %v", after.FileCallsByName)

		r := mustRaw(t, v, v.rootToken, "LIST", mount+"/certs", nil, nil)
		keys, _ := listKeys(t, r)
		assert.NotContains(t, keys, "a/b")
		assert.Contains(t, strings.Join(r.warnings(), " "), `cannot be served and were left out: "a/b"`, "the list's warning names it: %s", r)
	})

	t.Run("a policy on a name with a space grants that one only", func(t *testing.T) {
		token := certReader(t, v, "nhncert-example-new", "example.com (new)", "example.com")
		r := mustRaw(t, v, token, "GET", mount+"/certs/example.com%20%28new%29", nil, nil)
		assert.Equal(t, 200, r.status, "GET with the token, percent-encoded: %s", r)
		for _, other := range []string{"example.com", "example.com (new", "웹 서버 인증서"} {
			c := v.cli(token, "", "read", mount+"/certs/"+other)
			assert.NotEqual(t, 0, c.code, "vault read %q with the example.com (new) token: %s", other, c)
			assert.Contains(t, c.stderr, "Code: 403", "vault read %q with the example.com (new) token: %s", other, c)
		}
		// The policy path is exact: a trailing space is another name. (The
		// CLI trims the spaces around a path, so only the HTTP API can
		// name it; docs/paths.md says so.)
		r = mustRaw(t, v, token, "GET", mount+"/certs/example.com%20%28new%29%20", nil, nil)
		assert.Equal(t, 403, r.status, "GET \"example.com (new) \" with the token: %s", r)
		c := v.cli(token, "", "read", mount+"/metadata/example.com (new)")
		assert.Contains(t, c.stderr, "Code: 403", "the policy names certs/, not metadata/: %s", c)
	})
}
