// Package jsonhttp makes one JSON request and decodes its JSON answer: the
// round trip shared by the clients of this module's own test tooling (the
// emulator's admin client, the benchmark's Vault client). The plugin's NHN
// client does not use it: NHN's answers need their own checks (nhn/retry.go).
package jsonhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// StatusError is an answer outside 2xx. Body holds what was read of it (at
// most the limit given to Do), for the caller to turn into its own error.
type StatusError struct {
	StatusCode int
	Body       []byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.StatusCode, bytes.TrimSpace(e.Body))
}

// Do sends method to url with header, and in (when not nil) as a JSON
// body; it reads at most limit bytes of the answer and decodes a non-empty
// 2xx answer into out (when not nil). An answer outside 2xx is a
// *StatusError. c nil means http.DefaultClient.
func Do(ctx context.Context, c *http.Client, method, url string, header http.Header, in, out any, limit int64) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &StatusError{StatusCode: resp.StatusCode, Body: data}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding the answer: %w", err)
		}
	}
	return nil
}
