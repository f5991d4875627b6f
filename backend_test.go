package nhncert

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestFactoryReportsVersionAndSealWrap(t *testing.T) {
	h := newHarness(t)
	require.Equal(t, Version, h.b.PluginVersion().Version)
	require.ElementsMatch(t, []string{"config", "cache/", "passphrase/"}, h.b.SpecialPaths().SealWrapStorage)
	require.Equal(t, logical.TypeLogical, h.b.Type())
}

func TestUnconfiguredMountAnswersClearly(t *testing.T) {
	h := newHarness(t)
	for _, op := range []struct {
		op   logical.Operation
		path string
	}{{logical.ReadOperation, "certs/example.com"}, {logical.ListOperation, "certs/"}} {
		resp, err := h.request(op.op, op.path, nil)
		require.NoError(t, err)
		require.True(t, resp.IsError())
		require.Contains(t, resp.Error().Error(), "not configured")
	}
	resp, err := h.request(logical.ReadOperation, "config", nil)
	require.NoError(t, err)
	require.Nil(t, resp, "reading an absent config is a 404")
}

func TestHelpAndOpenAPI(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"config", "certs/", "certs/example.com"} {
		resp, err := h.request(logical.HelpOperation, p, nil)
		require.NoError(t, err, p)
		help := resp.Data["help"].(string)
		require.Greater(t, len(help), 200, "help for %s is too short: %q", p, help)
	}
	resp, err := h.request(logical.HelpOperation, "", nil)
	require.NoError(t, err)
	doc := resp.Data["openapi"]
	require.NotNil(t, doc)
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(doc))
	for _, op := range []string{"nhncert-read-certificate", "nhncert-list-certificates", "nhncert-configure", "nhncert-read-configuration", "nhncert-delete-configuration"} {
		require.Contains(t, buf.String(), op)
	}
}
