package nhn

import (
	"context"
	"encoding/json"
	"fmt"
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
	lifetime := 86400 * time.Second // NHN's default when the answer has none
	if len(a.ExpiresIn) > 0 {
		secs, err := strconv.ParseFloat(strings.Trim(string(a.ExpiresIn), `"`), 64)
		if err != nil || secs <= 0 {
			return "", &Error{Op: op, HTTPStatus: http.StatusOK, Message: "answer has an invalid expires_in"}
		}
		lifetime = time.Duration(secs * float64(time.Second))
	}
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

func (c *Client) TokenExpiresAt() time.Time {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token == "" {
		return time.Time{}
	}
	return c.tokenExpires
}
