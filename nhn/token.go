package nhn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
)

// The v1.3 User Access Key token: issued by NHN's token service with the
// access key, shared by concurrent callers, renewed before it expires, and
// dropped when NHN rejects it.

// maxTokenBody bounds the token service's answer.
const maxTokenBody = 64 << 10

// bearer returns a v1.3 token, issuing one when there is none or it is
// close to expiry. Concurrent callers share one exchange.
func (c *Client) bearer(ctx context.Context) (string, error) {
	if t := c.currentToken(); t != "" {
		return t, nil
	}
	v, err, _ := c.tokenFlight.Do("token", func() (any, error) {
		if t := c.currentToken(); t != "" {
			return t, nil
		}
		// The exchange outlives a caller that gives up, so the others
		// waiting on it still get the token.
		return c.issueToken(context.WithoutCancel(ctx))
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (c *Client) currentToken() string {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token != "" && time.Now().Before(c.tokenExpiry) {
		return c.token
	}
	return ""
}

// dropToken forgets token unless another caller already replaced it.
func (c *Client) dropToken(token string) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if token != "" && c.token == token {
		c.token = ""
	}
}

type tokenAnswer struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
}

func (c *Client) issueToken(ctx context.Context) (string, error) {
	const op = "issuing a User Access Key token"
	u := strings.TrimRight(c.cfg.AuthEndpoint, "/") + "/oauth2/token/create"
	form := url.Values{"grant_type": {"client_credentials"}}.Encode()
	body, _, err := c.do(ctx, CallToken, op, false, maxTokenBody, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.cfg.AccessKeyID, c.cfg.SecretAccessKey)
		return req, nil
	})
	if err != nil {
		return "", err
	}
	var a tokenAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return "", &Error{Op: op, HTTPStatus: http.StatusOK, Message: "answer is not the expected JSON"}
	}
	if a.AccessToken == "" {
		return "", &Error{Op: op, HTTPStatus: http.StatusOK, Message: "answer has no access_token"}
	}
	if a.TokenType != "" && !strings.EqualFold(a.TokenType, "Bearer") {
		return "", &Error{Op: op, HTTPStatus: http.StatusOK, Message: fmt.Sprintf("unexpected token_type %q", safetext.Clean(a.TokenType, 20))}
	}
	lifetime := tokenLifetime(a.ExpiresIn)
	// Renew shortly before expiry: a tenth of the lifetime, at most a minute.
	margin := min(lifetime/10, time.Minute)
	c.tokenMu.Lock()
	c.token = a.AccessToken
	c.tokenExpires = time.Now().Add(lifetime)
	c.tokenExpiry = c.tokenExpires.Add(-margin)
	c.tokenMu.Unlock()
	c.logger.Debug("issued a User Access Key token", "expires_in", lifetime.String())
	return a.AccessToken, nil
}

// Bounds of a token's lifetime (CONTRACT: expires_in is 60..86400 s).
const (
	minTokenLifetime = 60 * time.Second
	maxTokenLifetime = 86400 * time.Second
)

// tokenLifetime reads expires_in as the contract says: absent, NHN's
// default (24 h); outside 60..86400 s, clamped into that range; not a
// number (NaN, text), 60 s. A lifetime out of range would otherwise
// overflow to a negative one, and every request would issue a token.
func tokenLifetime(raw json.RawMessage) time.Duration {
	v := strings.Trim(string(raw), `"`)
	if len(raw) == 0 || v == "null" {
		return maxTokenLifetime
	}
	secs, err := strconv.ParseFloat(v, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange), math.IsNaN(secs):
		return minTokenLifetime
	case secs < minTokenLifetime.Seconds():
		return minTokenLifetime
	case secs > maxTokenLifetime.Seconds():
		return maxTokenLifetime
	}
	return time.Duration(secs * float64(time.Second))
}

func (c *Client) TokenExpiresAt() time.Time {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token == "" {
		return time.Time{}
	}
	return c.tokenExpires
}
