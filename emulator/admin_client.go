package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/jsonhttp"
)

// Admin is a client for the admin API of an emulator running elsewhere (for
// instance cmd/nhncert-emulator started by an integration test).
type Admin struct {
	BaseURL string       // the emulator's base URL, e.g. "http://127.0.0.1:18200"
	HTTP    *http.Client // nil means http.DefaultClient
}

// AdminError is a non-2xx answer of the admin API.
type AdminError struct {
	Method, Path string
	StatusCode   int
	Message      string
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("emulator admin %s %s: HTTP %d: %s", e.Method, e.Path, e.StatusCode, e.Message)
}

func (a *Admin) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := strings.TrimRight(a.BaseURL, "/") + AdminPrefix + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	err := jsonhttp.Do(ctx, a.HTTP, method, u, http.Header{"Accept": {"application/json"}}, in, out, 256<<20)
	var se *jsonhttp.StatusError
	switch {
	case errors.As(err, &se):
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(se.Body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(se.Body))
		}
		return &AdminError{Method: method, Path: AdminPrefix + path, StatusCode: se.StatusCode, Message: e.Error}
	case err != nil:
		return fmt.Errorf("emulator admin %s %s: %w", method, path, err)
	}
	return nil
}

// Health checks that the emulator answers.
func (a *Admin) Health(ctx context.Context) error {
	return a.do(ctx, http.MethodGet, "/health", nil, nil, nil)
}

// WaitHealthy polls Health until it succeeds or ctx ends.
func (a *Admin) WaitHealthy(ctx context.Context) error {
	for {
		err := a.Health(ctx)
		if err == nil {
			return nil
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("emulator not healthy: %w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Certs lists every certificate with its metadata.
func (a *Admin) Certs(ctx context.Context) ([]AdminCert, error) {
	var out struct {
		Certs []AdminCert `json:"certs"`
	}
	err := a.do(ctx, http.MethodGet, "/certs", nil, nil, &out)
	return out.Certs, err
}

// AddCert generates a chain and puts it.
func (a *Admin) AddCert(ctx context.Context, req AddCertRequest) (AddCertResponse, error) {
	var out AddCertResponse
	err := a.do(ctx, http.MethodPost, "/certs", nil, req, &out)
	return out, err
}

// Remove deletes a certificate (no error if it did not exist).
func (a *Admin) Remove(ctx context.Context, name string) error {
	return a.do(ctx, http.MethodDelete, "/certs", url.Values{"name": {name}}, nil, nil)
}

// Rotate regenerates a certificate with a new key and serial.
func (a *Admin) Rotate(ctx context.Context, name string) (RotateResponse, error) {
	var out RotateResponse
	err := a.do(ctx, http.MethodPost, "/rotate", url.Values{"name": {name}}, nil, &out)
	return out, err
}

// Seed adds count cheap certificates named prefix%05d.example.com.
func (a *Admin) Seed(ctx context.Context, prefix string, count int) error {
	return a.do(ctx, http.MethodPost, "/seed", nil, SeedRequest{Prefix: prefix, Count: count}, nil)
}

// SeedDemo puts the demo set.
func (a *Admin) SeedDemo(ctx context.Context) error {
	return a.do(ctx, http.MethodPost, "/demo", nil, nil, nil)
}

// SetFault injects a fault.
func (a *Admin) SetFault(ctx context.Context, f Fault) error {
	return a.do(ctx, http.MethodPut, "/fault", nil, f, nil)
}

// ClearFault removes the fault.
func (a *Admin) ClearFault(ctx context.Context) error {
	return a.do(ctx, http.MethodDelete, "/fault", nil, nil, nil)
}

// SetLatency adds d before every non-admin answer (0 removes it).
func (a *Admin) SetLatency(ctx context.Context, d time.Duration) error {
	return a.do(ctx, http.MethodPut, "/latency", nil, map[string]string{"delay": d.String()}, nil)
}

// RevokeTokens rejects every token issued so far.
func (a *Admin) RevokeTokens(ctx context.Context) error {
	return a.do(ctx, http.MethodPost, "/tokens/revoke", nil, nil, nil)
}

// Stats returns the counters.
func (a *Admin) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	err := a.do(ctx, http.MethodGet, "/stats", nil, nil, &out)
	return out, err
}

// ResetStats zeroes the counters.
func (a *Admin) ResetStats(ctx context.Context) error {
	return a.do(ctx, http.MethodDelete, "/stats", nil, nil, nil)
}
