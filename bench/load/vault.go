package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/jsonhttp"
)

// vaultClient is a minimal Vault HTTP API client over one shared keep-alive
// Transport: the benchmark wants to see Vault's cost, not a client
// library's.
type vaultClient struct {
	addr  string // http://127.0.0.1:port
	token string
	http  *http.Client
}

// newTransport returns a keep-alive Transport that keeps conns idle
// connections to Vault open, so that no request of a load phase pays a TCP
// handshake. Compression is off (Vault gzips only its UI anyway), so that
// what is measured is Vault's plain JSON answer.
func newTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // loopback only; never a proxy from the environment
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

func newVaultClient(addr, token string, conns int) *vaultClient {
	return &vaultClient{
		addr:  strings.TrimRight(addr, "/"),
		token: token,
		http:  &http.Client{Transport: newTransport(conns), Timeout: 2 * time.Minute},
	}
}

// vaultError is a non-2xx answer.
type vaultError struct {
	method, path string
	status       int
	body         string
}

func (e *vaultError) Error() string {
	return fmt.Sprintf("vault %s %s: HTTP %d: %s", e.method, e.path, e.status, strings.TrimSpace(e.body))
}

// do sends one request and decodes a JSON answer into out (if not nil).
func (v *vaultClient) do(ctx context.Context, method, path string, in, out any) error {
	err := jsonhttp.Do(ctx, v.http, method, v.addr+"/v1/"+path, http.Header{"X-Vault-Token": {v.token}}, in, out, 64<<20)
	var se *jsonhttp.StatusError
	switch {
	case errors.As(err, &se):
		return &vaultError{method: method, path: path, status: se.StatusCode, body: truncate(string(se.Body), 400)}
	case err != nil:
		return fmt.Errorf("vault %s %s: %w", method, path, err)
	}
	return nil
}

// secret is the part of a Vault answer the benchmark looks at.
type secret struct {
	Data     json.RawMessage `json:"data"`
	Warnings []string        `json:"warnings"`
}

func (v *vaultClient) read(ctx context.Context, path string) (*secret, error) {
	var s secret
	if err := v.do(ctx, http.MethodGet, path, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func (v *vaultClient) write(ctx context.Context, path string, data any) error {
	return v.do(ctx, http.MethodPost, path, data, nil)
}

// enableNHN mounts a fresh nhncert at path and writes its config pointing at
// the emulator, with the background refresh off so that no background list
// can land inside a measured window.
func (v *vaultClient) enableNHN(ctx context.Context, path, plugin, version, emulatorURL string) error {
	if err := v.write(ctx, "sys/mounts/"+path, map[string]any{"type": plugin, "plugin_version": version}); err != nil {
		return err
	}
	return v.write(ctx, path+"/config", map[string]any{
		"endpoint":          emulatorURL,
		"auth_endpoint":     emulatorURL,
		"app_key":           "demo-app-key",
		"access_key_id":     "demo-access-key-id",
		"secret_access_key": "demo-secret-access-key",
		"refresh_interval":  "0",
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
