package nhncert

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

func TestReadSplitsTheFile(t *testing.T) {
	h := configuredHarness(t, nil)
	ca, err := emulator.NewCA(2)
	require.NoError(t, err)
	ch := h.putChain("example.com", emulator.ChainOptions{
		CA: ca, KeyType: emulator.RSA, DNSNames: []string{"example.com", "www.example.com"},
	}, emulator.FileOptions{IncludeRoot: true, Shuffle: rand.New(rand.NewPCG(1, 2))})

	resp := h.read("example.com", nil)
	d := resp.Data
	require.Empty(t, resp.Warnings)
	require.Equal(t, strings.TrimSpace(string(ch.LeafPEM)), d["certificate"])
	require.Equal(t, strings.TrimSpace(string(ca.IntermediatePEMs[0])), d["issuing_ca"])
	require.Equal(t, []string{
		strings.TrimSpace(string(ca.IntermediatePEMs[0])),
		strings.TrimSpace(string(ca.IntermediatePEMs[1])),
		strings.TrimSpace(string(ca.RootPEM)),
	}, d["ca_chain"])
	require.Equal(t, strings.TrimSpace(string(ch.KeyPEM)), d["private_key"])
	require.True(t, strings.HasPrefix(d["private_key"].(string), "-----BEGIN RSA PRIVATE KEY-----"))
	require.Equal(t, "rsa", d["private_key_type"])
	require.Equal(t, emulator.FormatSerial(ch.Leaf.SerialNumber), d["serial_number"])
	require.Regexp(t, `^[0-9a-f]{2}(:[0-9a-f]{2})*$`, d["serial_number"])
	require.Equal(t, "example.com", d["common_name"])
	require.Equal(t, []string{"example.com", "www.example.com"}, d["dns_names"])
	require.Equal(t, ch.Leaf.NotBefore.UTC().Format(time.RFC3339), d["not_before"])
	require.Equal(t, ch.Leaf.NotAfter.UTC().Format(time.RFC3339), d["not_after"])
	// No numeric expiration next to the certificate: Vault Agent would
	// sleep until near expiry and miss rotations.
	require.NotContains(t, d, "expiration")
	require.NotContains(t, d, "lease_duration")
	require.Zero(t, resp.Secret)
}

func TestReadChainOrderWhateverTheFileOrder(t *testing.T) {
	h := configuredHarness(t, nil)
	ca, err := emulator.NewCA(3)
	require.NoError(t, err)
	want := []string{
		strings.TrimSpace(string(ca.IntermediatePEMs[0])),
		strings.TrimSpace(string(ca.IntermediatePEMs[1])),
		strings.TrimSpace(string(ca.IntermediatePEMs[2])),
		strings.TrimSpace(string(ca.RootPEM)),
	}
	for i := range 12 {
		name := fmt.Sprintf("order%d.example.com", i)
		h.putChain(name, emulator.ChainOptions{CA: ca}, emulator.FileOptions{
			IncludeRoot: true, KeyFirst: i%2 == 0, Shuffle: rand.New(rand.NewPCG(uint64(i), 7)),
		})
		d := h.read(name, nil).Data
		require.Equal(t, want, d["ca_chain"], "file order %d", i)
		require.Equal(t, want[0], d["issuing_ca"])
	}
}

func TestReadEachKeyType(t *testing.T) {
	h := configuredHarness(t, nil)
	for _, c := range []struct {
		kt        emulator.KeyType
		typ       string
		blockType string
	}{
		{emulator.RSA, "rsa", "RSA PRIVATE KEY"},
		{emulator.RSAPKCS8, "rsa", "PRIVATE KEY"},
		{emulator.EC, "ec", "EC PRIVATE KEY"},
		{emulator.ECPKCS8, "ec", "PRIVATE KEY"},
		{emulator.Ed25519, "ed25519", "PRIVATE KEY"},
	} {
		t.Run(string(c.kt), func(t *testing.T) {
			name := string(c.kt) + ".example.com"
			ch := h.putChain(name, emulator.ChainOptions{KeyType: c.kt}, emulator.FileOptions{})
			d := h.read(name, nil).Data
			require.Equal(t, c.typ, d["private_key_type"])
			block, _ := pem.Decode([]byte(d["private_key"].(string)))
			require.NotNil(t, block)
			require.Equal(t, c.blockType, block.Type, "the key keeps the form the file had")
			require.Equal(t, strings.TrimSpace(string(ch.KeyPEM)), d["private_key"])

			// pkcs8 converts every kind, and the key still matches.
			d8 := h.read(name, map[string]any{"private_key_format": "pkcs8"}).Data
			block, _ = pem.Decode([]byte(d8["private_key"].(string)))
			require.Equal(t, "PRIVATE KEY", block.Type)
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			require.NoError(t, err)
			testkit.RequireKeyMatches(t, key.(crypto.Signer), ch.Leaf)
		})
	}
	require.EqualValues(t, 1, h.fileCalls("rsa.example.com"), "the second read of each came from the cache")
}

func TestReadFormats(t *testing.T) {
	h := configuredHarness(t, nil)
	ch := h.putChain("example.com", emulator.ChainOptions{KeyType: emulator.EC}, emulator.FileOptions{IncludeRoot: true})
	pemData := h.read("example.com", nil).Data

	der := h.read("example.com", map[string]any{"format": "der"}).Data
	require.Equal(t, base64.StdEncoding.EncodeToString(ch.Leaf.Raw), der["certificate"])
	require.Equal(t, base64.StdEncoding.EncodeToString(ch.CA.Intermediates[0].Raw), der["issuing_ca"])
	require.Len(t, der["ca_chain"], 2)
	keyDER, err := base64.StdEncoding.DecodeString(der["private_key"].(string))
	require.NoError(t, err)
	_, err = x509.ParseECPrivateKey(keyDER)
	require.NoError(t, err)
	der8 := h.read("example.com", map[string]any{"format": "der", "private_key_format": "pkcs8"}).Data
	keyDER, _ = base64.StdEncoding.DecodeString(der8["private_key"].(string))
	_, err = x509.ParsePKCS8PrivateKey(keyDER)
	require.NoError(t, err)

	bundle := h.read("example.com", map[string]any{"format": "pem_bundle"}).Data
	var types []string
	var certs []string
	for _, b := range testkit.RequirePEMBlocks(t, []byte(bundle["certificate"].(string))) {
		types = append(types, b.Type)
		if b.Type == "CERTIFICATE" {
			certs = append(certs, strings.TrimSpace(string(pem.EncodeToMemory(b))))
		}
	}
	require.Equal(t, []string{"EC PRIVATE KEY", "CERTIFICATE", "CERTIFICATE", "CERTIFICATE"}, types)
	require.Equal(t, append([]string{pemData["certificate"].(string)}, pemData["ca_chain"].([]string)...), certs)
	require.Equal(t, pemData["private_key"], bundle["private_key"])

	for _, bad := range []map[string]any{{"format": "pfx"}, {"private_key_format": "pkcs1"}} {
		resp, err := h.request(logical.ReadOperation, "certs/example.com", bad)
		require.NoError(t, err)
		require.True(t, resp.IsError())
	}
	require.EqualValues(t, 1, h.fileCalls("example.com"))
}

func TestReadWildcardName(t *testing.T) {
	h := configuredHarness(t, nil)
	h.putChain("*.example.com", emulator.ChainOptions{DNSNames: []string{"*.example.com"}}, emulator.FileOptions{})
	d := h.read("*.example.com", nil).Data
	require.Equal(t, "*.example.com", d["common_name"])
	require.EqualValues(t, 1, h.fileCalls("*.example.com"))
}

func TestReadRejectsHostileNamesBeforeUpstream(t *testing.T) {
	h := configuredHarness(t, nil)
	for _, name := range []string{
		"a/b", "../config", "..", ".", "a\x00b", "a\nb", "a\x7fb", "a\u0085b", "a\xffb",
		strings.Repeat("a", 10*1024), `a\b`, `..\config`,
	} {
		resp, err := h.request(logical.ReadOperation, "certs/"+name, nil)
		if err != nil {
			// Vault's router refuses a path with a line break itself.
			require.ErrorIs(t, err, logical.ErrUnsupportedPath, "%q", name)
			continue
		}
		require.True(t, resp.IsError(), "%q must be refused", name)
		require.NotContains(t, resp.Error().Error(), "\x00")
	}
	require.Zero(t, h.emu.Stats().FileCalls, "no hostile name reached NHN")
	require.Zero(t, h.emu.Stats().TokenIssued)
	require.Empty(t, h.cacheKeys())
}

func TestReadUnknownNameIs404(t *testing.T) {
	h := configuredHarness(t, nil)
	h.emu.Put(emulator.Certificate{Name: "nofile.example.com"}) // name without a file: 52001
	for _, name := range []string{"missing.example.com", "nofile.example.com"} {
		resp, err := h.request(logical.ReadOperation, "certs/"+name, nil)
		require.Nil(t, resp)
		var coded logical.HTTPCodedError
		require.True(t, errors.As(err, &coded), "%v", err)
		require.Equal(t, http.StatusNotFound, coded.Code())
	}
	require.Empty(t, h.cacheKeys())
}

func TestReadUpstreamResultCodes(t *testing.T) {
	h := configuredHarness(t, nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	for code := 52000; code <= 52008; code++ {
		h.emu.SetFault(emulator.Fault{Mode: emulator.FaultResult, Target: "files", ResultCode: code})
		resp, err := h.request(logical.ReadOperation, "certs/example.com", map[string]any{"refresh": true})
		require.Nil(t, resp)
		var coded logical.HTTPCodedError
		require.True(t, errors.As(err, &coded), "%d: %v", code, err)
		if code == 52000 || code == 52001 {
			require.Equal(t, http.StatusNotFound, coded.Code())
			continue
		}
		require.Equal(t, http.StatusBadGateway, coded.Code())
		require.Contains(t, err.Error(), fmt.Sprintf("resultCode %d", code))
		require.Contains(t, err.Error(), emulator.ResultMessages[code])
		h.requireNoSecrets("error", err.Error())
		require.NotContains(t, err.Error(), testAppKey)
	}
	require.Empty(t, h.cacheKeys())
}

func TestSecretsNeverLogged(t *testing.T) {
	h := configuredHarness(t, nil)
	ch := h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	h.read("example.com", nil)
	h.emu.RevokeTokens()
	h.read("example.com", map[string]any{"refresh": true})
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	h.request(logical.ReadOperation, "certs/other.example.com", nil)
	h.request(logical.ListOperation, "certs/", nil)
	h.emu.ClearFault()
	h.request(logical.ListOperation, "certs/", nil)

	logs := h.logs.String()
	require.NotEmpty(t, logs)
	h.requireNoSecrets("logs", logs)
	require.NotContains(t, logs, "PRIVATE KEY")
	require.NotContains(t, logs, string(ch.KeyPEM[40:80]))
	require.GreaterOrEqual(t, h.emu.Stats().TokenIssued, int64(2), "the run covered a token re-issue")
}

func TestReadKeystoreFormats(t *testing.T) {
	h := configuredHarness(t, nil)
	h.putChain("example.com", emulator.ChainOptions{KeyType: emulator.EC}, emulator.FileOptions{IncludeRoot: true})
	pemData := h.read("example.com", nil).Data
	bn := h.b.cache.get("example.com", mustSession(h).cfg.Generation).bundle

	// Vault PKI's defaults: password "changeit", alias "1"; our default
	// encoder modern2023. The keystore is in "certificate", the rest PEM.
	p12 := h.read("example.com", map[string]any{"format": "pkcs12_bundle"}).Data
	want, err := renderPKCS12(bn, "modern2023", "changeit")
	require.NoError(t, err)
	require.Equal(t, want, p12["certificate"], "modern2023 with password changeit")
	jks := h.read("example.com", map[string]any{"format": "jks_bundle"}).Data
	want, err = renderJKS(bn, "1", "changeit")
	require.NoError(t, err)
	require.Equal(t, want, jks["certificate"], "alias 1 with password changeit")
	for _, d := range []map[string]any{p12, jks} {
		for _, k := range []string{"private_key", "issuing_ca", "ca_chain", "full_chain", "serial_number", "rotation_period"} {
			require.Equal(t, pemData[k], d[k], k)
		}
	}

	p12 = h.read("example.com", map[string]any{"format": "pkcs12_bundle", "pkcs12_password": "pw-1", "pkcs12_encoder": "LEGACY_DES"}).Data
	want, err = renderPKCS12(bn, "legacy_des", "pw-1")
	require.NoError(t, err)
	require.Equal(t, want, p12["certificate"])
	jks = h.read("example.com", map[string]any{"format": "jks_bundle", "jks_password": "pw-2", "jks_private_key_alias": "Tomcat"}).Data
	want, err = renderJKS(bn, "Tomcat", "pw-2")
	require.NoError(t, err)
	require.Equal(t, want, jks["certificate"])

	const secretPW = "do-not-echo-😀"
	for _, tc := range []struct {
		data map[string]any
		msg  string
	}{
		{map[string]any{"format": "pkcs12_bundle", "pkcs12_encoder": "modern2020"}, `pkcs12_encoder must be one of "modern2023", "legacy_des", "legacy_rc2", "modern2026"`},
		{map[string]any{"format": "pkcs12_bundle", "pkcs12_password": secretPW}, "pkcs12_password holds a character outside the Basic Multilingual Plane"},
		{map[string]any{"format": "jks_bundle", "jks_password": secretPW, "jks_private_key_alias": ""}, "jks_private_key_alias must not be empty"},
		{map[string]any{"format": "p12"}, `format must be "pem", "der", "pem_bundle", "pkcs12_bundle" or "jks_bundle"`},
	} {
		resp, err := h.request(logical.ReadOperation, "certs/example.com", tc.data)
		require.NoError(t, err)
		require.True(t, resp.IsError(), "%v", tc.data)
		require.Contains(t, resp.Error().Error(), tc.msg)
		require.NotContains(t, resp.Error().Error(), "do-not-echo")
	}
	require.NotContains(t, h.logs.String(), "do-not-echo")
	require.NotContains(t, h.logs.String(), "pw-1")
	require.EqualValues(t, 1, h.fileCalls("example.com"), "every format from the one download")
}

func TestReadRotationFields(t *testing.T) {
	h := configuredHarness(t, map[string]any{"cache_ttl": "2h", "refresh_interval": "0"})
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	for _, format := range []string{"pem", "der", "pem_bundle", "pkcs12_bundle", "jks_bundle"} {
		d := h.read("example.com", map[string]any{"format": format}).Data
		require.NotContains(t, d, "expiration", "no numeric expiration: Agent would sleep most of the certificate's life")
		// Refresh off: checked again when the entry expires, cache_ttl
		// after the download (and the harness's clock is pinned just
		// before it).
		require.Equal(t, int64(7200), d["rotation_period"], format)
		ttl, ok := d["ttl"].(int64)
		require.True(t, ok, "ttl is %T", d["ttl"])
		require.GreaterOrEqual(t, ttl, int64(7200), format)
		require.LessOrEqual(t, ttl, int64(7201), format)
		md := h.readPath("metadata/example.com", nil).Data
		require.Equal(t, md["cached_at"], d["last_vault_rotation"], format)
		require.Equal(t, d["ttl"], md["ttl"])
		require.Equal(t, d["rotation_period"], md["rotation_period"])
	}
	e := h.b.cache.get("example.com", mustSession(h).cfg.Generation)
	require.NotContains(t, e.data, "ttl", "computed per read, never stored in the cached map")

	// With the background refresh on, rotation_period is its interval; no
	// run is scheduled in this harness (Vault never initialised it), as on
	// a performance standby, so ttl is at most refresh_interval (jitter
	// included), not the entry's expiry an hour away.
	h.configure(map[string]any{"cache_ttl": "1h", "refresh_interval": "5m"})
	h.b.jitter = func() float64 { return 0.999 }
	d := h.read("example.com", nil).Data
	require.Equal(t, int64(300), d["rotation_period"])
	require.Equal(t, int64(300), d["ttl"])
}

// Agent's secret with arguments and VSO's params send a write: it answers
// as the read does, with the parameters from the body.
func TestReadWithParametersAsAWrite(t *testing.T) {
	h := configuredHarness(t, nil)
	h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{})
	read := h.read("example.com", map[string]any{"format": "jks_bundle", "jks_private_key_alias": "app"}).Data
	resp, err := h.request(logical.UpdateOperation, "certs/example.com", map[string]any{"format": "jks_bundle", "jks_private_key_alias": "app"})
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
	require.Equal(t, read, resp.Data)
	require.EqualValues(t, 1, h.fileCalls("example.com"))
}
