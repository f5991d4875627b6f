package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPathHelp checks that `vault path-help` prints the plugin's own help
// for the backend and each path.
func TestPathHelp(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault
	for _, c := range []struct {
		path string
		want []string
	}{
		{mount + "/", []string{"NHN Cloud Certificate Manager", "^config$", "^certs/?$", "certs/"}},
		{mount + "/config", []string{"Matching Route: ^config$", "app_key", "access_key_id", "secret_access_key", "region", "api_version", "endpoint", "auth_endpoint", "cache_ttl", "request_timeout", "never returned"}},
		{mount + "/certs/", []string{"Matching Route: ^certs/?$", "List the certificates in NHN Certificate Manager", "status", "unexpired", "key_info"}},
		{mount + "/certs/example.com", []string{"Read a certificate and its private key from NHN Certificate Manager", "refresh", "format", "pem_bundle", "private_key_format", "pkcs8", "expiration"}},
		{mount + "/certs/*.example.com", []string{"Read a certificate and its private key"}},
	} {
		out := mustCLI(t, v, "path-help", c.path)
		for _, w := range c.want {
			assert.Contains(t, out, w, "vault path-help %s does not say %q", c.path, w)
		}
	}
}

// TestPluginInfo checks the catalog and the mount: the plugin is
// registered as version v0.1.0 with its sha256, and the mount runs that
// version.
func TestPluginInfo(t *testing.T) {
	e := sharedEnv(t)
	v := e.vault

	out := mustCLI(t, v, "plugin", "info", "-version="+pluginVersion, "secret", pluginName)
	for _, w := range []string{pluginName, pluginVersion, v.pluginSHA} {
		assert.Contains(t, out, w, "vault plugin info does not show %q", w)
	}
	out = mustCLI(t, v, "plugin", "info", "-format=json", "-version="+pluginVersion, "secret", pluginName)
	var info map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &info), "vault plugin info -format=json:\n%s", out)
	for k, want := range map[string]any{"name": pluginName, "version": pluginVersion, "sha256": v.pluginSHA, "builtin": false, "command": pluginName} {
		assert.Equal(t, want, info[k], "vault plugin info -format=json: %s", k)
	}

	out = mustCLI(t, v, "plugin", "list", "-detailed", "secret")
	found := false
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, pluginName) && strings.Contains(l, pluginVersion) {
			found = true
		}
	}
	assert.True(t, found, "vault plugin list -detailed secret has no %s %s line:\n%s", pluginName, pluginVersion, out)

	checkMountVersion(t, e)
}

// checkMountVersion checks that `vault secrets list -detailed` shows the
// nhncert/ mount running the registered version and binary.
func checkMountVersion(t *testing.T, e *env) {
	t.Helper()
	v := e.vault
	out := mustCLI(t, v, "secrets", "list", "-detailed")
	found := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, mount+"/ ") {
			found = strings.Contains(l, pluginName) && strings.Contains(l, pluginVersion)
			assert.True(t, found, "vault secrets list -detailed: the %s/ line does not show %s %s:\n%s", mount, pluginName, pluginVersion, l)
		}
	}
	assert.True(t, found, "vault secrets list -detailed shows no %s/ mount running %s:\n%s", mount, pluginVersion, out)
	out = mustCLI(t, v, "secrets", "list", "-detailed", "-format=json")
	var mounts map[string]map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &mounts), "vault secrets list -detailed -format=json")
	m := mounts[mount+"/"]
	for k, want := range map[string]any{
		"type":                   pluginName,
		"plugin_version":         pluginVersion,
		"running_plugin_version": pluginVersion,
		"running_sha256":         v.pluginSHA,
	} {
		assert.Equal(t, want, m[k], "vault secrets list -detailed -format=json: %s/ %s", mount, k)
	}
}
