package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:18200": true, "127.0.0.1:0": true, "[::1]:80": true, "localhost:1": true,
		":18200": false, "0.0.0.0:1": false, "10.1.2.3:80": false, "[::]:1": false, "example.com:80": false, "nonsense": false,
	} {
		err := checkLoopback(addr)
		require.Equal(t, ok, err == nil, "%s: %v", addr, err)
	}
}

func TestParseFlags(t *testing.T) {
	var out bytes.Buffer
	c, err := parseFlags(nil, &out)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:18200", c.listen)
	require.Equal(t, "demo-app-key", c.appKey)
	require.Equal(t, 24*time.Hour, c.tokenTTL)
	require.Equal(t, "demo", c.seed)

	for _, args := range [][]string{
		{"-listen", "0.0.0.0:18200"}, {"-token-ttl", "30s"}, {"-token-ttl", "25h"}, {"-seed", "all"},
		{"-bulk", "-1"}, {"-max-page-size", "-2"}, {"-app-key", ""}, {"extra"},
	} {
		_, err := parseFlags(args, io.Discard)
		require.Error(t, err, "%v", args)
	}
	_, err = parseFlags([]string{"-listen", "0.0.0.0:18200", "-allow-non-loopback"}, io.Discard)
	require.NoError(t, err)

	out.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"-h"}, &out))
	require.Contains(t, out.String(), "EMULATOR")
	require.Contains(t, out.String(), "NOT a real NHN Cloud endpoint")
}

func TestRunServesAndShutsDown(t *testing.T) {
	addrFile := filepath.Join(t.TempDir(), "addr")
	const secret = "s3cret-value-for-test"
	var logs testkit.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-addr-file", addrFile, "-seed", "none", "-bulk", "3",
			"-secret-access-key", secret}, &logs)
	}()

	var addr string
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(addrFile)
		addr = strings.TrimSpace(string(b))
		return err == nil && addr != ""
	}, 10*time.Second, 20*time.Millisecond)
	base := "http://" + addr
	a := &emulator.Admin{BaseURL: base}
	require.NoError(t, a.Health(context.Background()))

	req, _ := http.NewRequest(http.MethodPost, base+emulator.TokenPath, strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo-access-key-id", secret)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&tok))
	res.Body.Close()

	req, _ = http.NewRequest(http.MethodGet, base+"/certmanager/v1.3/appkeys/demo-app-key/certificates/bulk00001.example.com/files?x=1", nil)
	req.Header.Set("X-NHN-AUTHORIZATION", "Bearer "+tok.AccessToken)
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, string(body), "BEGIN EC PRIVATE KEY")

	require.NoError(t, a.SetFault(context.Background(), emulator.Fault{Mode: emulator.FaultReset}))
	_, err = http.Get(base + "/certmanager/v1.3/appkeys/demo-app-key/certificates")
	require.Error(t, err)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	_, err = os.Stat(addrFile)
	require.True(t, os.IsNotExist(err), "addr file removed on exit")

	l := logs.String()
	require.Contains(t, l, "POST /oauth2/token/create 200")
	require.Contains(t, l, "GET /certmanager/v1.3/appkeys/demo-app-key/certificates/bulk00001.example.com/files 200")
	require.Contains(t, l, "GET /certmanager/v1.3/appkeys/demo-app-key/certificates reset")
	require.Contains(t, l, "NOT a real NHN Cloud endpoint")
	require.NotContains(t, l, secret)
	require.NotContains(t, l, tok.AccessToken)
	require.NotContains(t, l, "PRIVATE KEY")
	require.NotContains(t, l, "x=1")
}
