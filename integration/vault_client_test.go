package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"
)

// cliResult is one run of the vault CLI.
type cliResult struct {
	cmdOutput
	code int
}

func (r cliResult) String() string {
	return fmt.Sprintf("`vault %s` exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cli runs the vault CLI against v with token (none if ""), stdin as its
// input.
func (v *vaultServer) cli(token, stdin string, args ...string) cliResult {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.vault, args...)
	env := baseEnv(v.home, "VAULT_ADDR="+v.addr, "NO_COLOR=1")
	if token != "" {
		env = append(env, "VAULT_TOKEN="+token)
	}
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := cliResult{cmdOutput: cmdOutput{args: args, stdout: so.String(), stderr: se.String()}}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		r.code = -1
		r.stderr += "\n(run error: " + err.Error() + ")"
	}
	if ctx.Err() != nil {
		r.stderr += fmt.Sprintf("\n(timed out after %s)", cliTimeout)
	}
	return r
}

// rawResponse is an HTTP answer of Vault.
type rawResponse struct {
	status int
	body   []byte
}

// vaultErrors decodes {"errors":[...]}.
func (r rawResponse) errors() []string {
	var e struct {
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Errors
}

// data decodes {"data":{...}}.
func (r rawResponse) data() map[string]any {
	var e struct {
		Data map[string]any `json:"data"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Data
}

func (r rawResponse) String() string {
	return fmt.Sprintf("HTTP %d %s", r.status, bytes.TrimSpace(r.body))
}

var noRedirect = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// raw sends one HTTP request to v: rawPath is put after /v1/ as it is
// (percent escapes included), body (if not nil) is sent as JSON.
func (v *vaultServer) raw(token, method, rawPath string, query url.Values, body any) (rawResponse, error) {
	u := rawPath
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return rawResponse{}, err
		}
	}
	return v.rawBytes(token, method, u, b)
}

// rawBytes is raw with a body sent as it is (as JSON content), none when
// nil; rawPath may carry a query.
func (v *vaultServer) rawBytes(token, method, rawPath string, body []byte) (rawResponse, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, v.addr+"/v1/"+rawPath, rd)
	if err != nil {
		return rawResponse{}, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return rawResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, body: b}, err
}

// warnings decodes {"warnings":[...]}.
func (r rawResponse) warnings() []string {
	var w struct {
		Warnings []string `json:"warnings"`
	}
	_ = json.Unmarshal(r.body, &w)
	return w.Warnings
}

// says is what the user sees besides the data: the errors of an error
// answer, else the warnings.
func (r rawResponse) says() string {
	if errs := r.errors(); len(errs) > 0 {
		for i, e := range errs {
			errs[i] = oneLine(e)
		}
		return strings.Join(errs, "; ")
	}
	return strings.Join(r.warnings(), "; ")
}

// oneLine shows an error of Vault on one line: the plugin's coded errors
// come back as "1 error occurred:\n\t* <message>\n\n".
func oneLine(s string) string {
	s = strings.TrimSpace(strings.TrimPrefix(s, "1 error occurred:"))
	s = strings.TrimPrefix(s, "* ")
	return strings.Join(strings.Fields(s), " ")
}
