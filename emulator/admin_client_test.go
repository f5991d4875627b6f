package emulator

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

func TestAdminClientRoundTrip(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := &Admin{BaseURL: e.ts.URL + "/", HTTP: e.ts.Client()}
	require.NoError(t, a.Health(ctx))
	require.NoError(t, a.WaitHealthy(ctx))

	// AddCert: default one intermediate, EC.
	add, err := a.AddCert(ctx, AddCertRequest{Name: "a.example.com"})
	require.NoError(t, err)
	require.Equal(t, "a.example.com", add.Name)
	require.Equal(t, EC, add.KeyType)
	require.WithinDuration(t, time.Now().Add(90*24*time.Hour), add.NotAfter, time.Minute)
	tok := e.token()
	leaf, certs, key := splitFile(t, e.v13(tok, "/a.example.com/files").body)
	require.Equal(t, add.Serial, FormatSerial(leaf.SerialNumber))
	require.Len(t, certs, 2)
	testkit.RequireKeyPEMMatches(t, key, leaf)
	root, _ := pem.Decode([]byte(add.RootPEM))
	rootCert, err := x509.ParseCertificate(root.Bytes)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(rootCert)
	inter := x509.NewCertPool()
	inter.AddCert(certs[1])
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: "a.example.com"})
	require.NoError(t, err)

	// No intermediates, expired, root included, shuffled, key first.
	_, err = a.AddCert(ctx, AddCertRequest{Name: "b.example.com", Intermediates: -1, KeyType: ECPKCS8, KeyFirst: true, FileName: "b.crt"})
	require.NoError(t, err)
	r := e.v13(tok, "/b.example.com/files")
	require.Equal(t, `attachment; filename="b.crt"`, r.header.Get("Content-Disposition"))
	require.True(t, strings.HasPrefix(string(r.body), "-----BEGIN PRIVATE KEY-----"))
	_, certs, _ = splitFile(t, r.body)
	require.Len(t, certs, 1, "root signs the leaf")
	exp, err := a.AddCert(ctx, AddCertRequest{Name: "old.example.com", Expired: true, IncludeRoot: true, Shuffle: true, Intermediates: 2})
	require.NoError(t, err)
	require.True(t, exp.NotAfter.Before(time.Now().Add(-9*24*time.Hour)))
	_, certs, _ = splitFile(t, e.v11("/old.example.com/files").body)
	require.Len(t, certs, 4)
	require.Equal(t, []string{"a.example.com", "b.example.com"}, names(e.v13(tok, "").list(t)))

	// Rotate.
	rot, err := a.Rotate(ctx, "a.example.com")
	require.NoError(t, err)
	require.NotEqual(t, add.Serial, rot.Serial)
	require.Regexp(t, `^[0-9a-f]{2}(:[0-9a-f]{2})*$`, rot.Serial)
	leaf, _, _ = splitFile(t, e.v13(tok, "/a.example.com/files").body)
	require.Equal(t, rot.Serial, FormatSerial(leaf.SerialNumber))
	require.Equal(t, rot.NotAfter, leaf.NotAfter.UTC())
	_, err = a.Rotate(ctx, "missing")
	var ae *AdminError
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusNotFound, ae.StatusCode)

	// Certs, Remove, Seed.
	certList, err := a.Certs(ctx)
	require.NoError(t, err)
	require.Len(t, certList, 3)
	require.Equal(t, "a.example.com", certList[0].Name)
	require.Equal(t, rot.Serial, certList[0].Serial)
	require.True(t, certList[0].HasFile)
	require.NoError(t, a.Remove(ctx, "b.example.com"))
	require.NoError(t, a.Remove(ctx, "b.example.com"), "removing twice is fine")
	require.NoError(t, a.Seed(ctx, "bulk", 30))
	certList, err = a.Certs(ctx)
	require.NoError(t, err)
	require.Len(t, certList, 32)
	require.Equal(t, "bulk00000.example.com", certList[1].Name)

	// Faults.
	require.NoError(t, a.SetFault(ctx, Fault{Mode: FaultDown, Target: "list"}))
	require.Equal(t, http.StatusServiceUnavailable, e.v13(tok, "").status)
	require.NoError(t, a.ClearFault(ctx))
	require.Equal(t, http.StatusOK, e.v13(tok, "").status)
	require.NoError(t, a.SetFault(ctx, Fault{Mode: FaultSlow, Delay: 1500 * time.Millisecond, Target: "files"}))
	f, _ := e.s.CurrentFault()
	require.Equal(t, 1500*time.Millisecond, f.Delay)
	require.NoError(t, a.ClearFault(ctx))
	err = a.SetFault(ctx, Fault{Mode: "explode"})
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusBadRequest, ae.StatusCode)
	err = a.SetFault(ctx, Fault{Mode: FaultResult, ResultCode: 1})
	require.Error(t, err)

	// Latency.
	require.NoError(t, a.SetLatency(ctx, 250*time.Millisecond))
	require.Equal(t, 250*time.Millisecond, e.s.Latency())
	require.NoError(t, a.SetLatency(ctx, 0))

	// Tokens.
	require.NoError(t, a.RevokeTokens(ctx))
	require.Equal(t, http.StatusUnauthorized, e.v13(tok, "").status)

	// Stats.
	st, err := a.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, e.s.Stats(), st)
	require.EqualValues(t, 1, st.AuthRejected)
	require.EqualValues(t, 4, st.FileCalls)
	require.EqualValues(t, 2, st.FileCallsByName["a.example.com"])
	require.NoError(t, a.ResetStats(ctx))
	st, err = a.Stats(ctx)
	require.NoError(t, err)
	require.Zero(t, st.FileCalls)
	require.Empty(t, st.FileCallsByName)

	// Demo.
	require.NoError(t, a.SeedDemo(ctx))
	require.Contains(t, e.s.Names(), "ed25519.example.com")

	// Admin errors.
	_, err = a.AddCert(ctx, AddCertRequest{Name: "x", KeyType: "dsa"})
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusBadRequest, ae.StatusCode)
	_, err = a.AddCert(ctx, AddCertRequest{})
	require.Error(t, err)

	// A dead emulator is an error.
	dead := &Admin{BaseURL: "http://127.0.0.1:1"}
	require.Error(t, dead.Health(ctx))
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	require.Error(t, dead.WaitHealthy(cctx))
}
