package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kubeSecret is a Secret as the API server returns it (data decoded).
type kubeSecret struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Type string            `json:"type"`
	Data map[string][]byte `json:"data"`
}

// secret reads Secret ns/name through the API server.
func (k *kubeEnv) secret(ns, name string) (*kubeSecret, error) {
	b, err := k.get("/api/v1/namespaces/" + ns + "/secrets/" + name)
	if err != nil {
		return nil, err
	}
	var s kubeSecret
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding Secret %s/%s: %w", ns, name, err)
	}
	return &s, nil
}

// tlsLeafSerial returns the serial of the first certificate of s's tls.crt
// once s is a kubernetes.io/tls Secret whose tls.key matches it; the error
// says what is wrong and never holds key material.
func tlsLeafSerial(s *kubeSecret) (string, error) {
	if s.Type != "kubernetes.io/tls" {
		return "", fmt.Errorf("type is %q, want kubernetes.io/tls", s.Type)
	}
	pair, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		return "", fmt.Errorf("tls.crt (%d bytes) and tls.key (%d bytes) are not a matching pair: %v",
			len(s.Data["tls.crt"]), len(s.Data["tls.key"]), err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return "", err
	}
	return serialHex(leaf.SerialNumber), nil
}

// waitSecretSerial waits, at most bound, until Secret ns/name holds a
// valid TLS pair whose leaf has serial want, and returns it and how long
// that took.
func waitSecretSerial(t *testing.T, k *kubeEnv, op *proc, ns, name, want string, bound time.Duration) (*kubeSecret, time.Duration) {
	t.Helper()
	start := time.Now()
	var got *kubeSecret
	err := poll(bound, fmt.Sprintf("Secret %s/%s to hold the certificate with serial %s", ns, name, want), op, func() (bool, error) {
		s, err := k.secret(ns, name)
		if err != nil {
			return false, err
		}
		serial, err := tlsLeafSerial(s)
		if err != nil {
			return false, err
		}
		got = s
		return serial == want, fmt.Errorf("its leaf has serial %s", serial)
	})
	require.NoError(t, err)
	return got, time.Since(start)
}

// checkSecretMatchesVault reads mount/certs/name from Vault and checks s
// against it, as a TLS server loading the Secret would see it: tls.crt is
// full_chain (the leaf first, its serial serial_number), tls.key is the
// private key of that leaf.
func checkSecretMatchesVault(t *testing.T, e *env, s *kubeSecret, name string) {
	t.Helper()
	d := readCert(t, e.vault, name, nil).Data
	assert.Equal(t, "kubernetes.io/tls", s.Type, "the Secret's type")
	assert.Equal(t, str(t, d, "full_chain"), string(s.Data["tls.crt"]), "tls.crt is not the engine's full_chain")
	serial, err := tlsLeafSerial(s)
	if assert.NoError(t, err) {
		assert.Equal(t, str(t, d, "serial_number"), serial, "the first certificate of tls.crt is not the leaf Vault serves")
	}
	// Compared as a bool: a failure must not print the key.
	assert.True(t, bytes.Equal([]byte(str(t, d, "private_key")), s.Data["tls.key"]), "tls.key is not the private_key Vault serves")
	assert.Len(t, s.Data, 2, "the Secret holds other keys than tls.crt and tls.key")
}

// secretWatch records every change of one Secret that the API server
// reports through a watch: unlike polling, it misses no rewrite.
type secretWatch struct {
	mu     sync.Mutex
	events []secretEvent
	err    error // why the watch stopped, if it did
}

// secretEvent is one watch event: ADDED, MODIFIED or DELETED.
type secretEvent struct {
	typ, resourceVersion string
	at                   time.Time
}

// watchSecret starts watching Secret ns/name until the test ends.
func watchSecret(t *testing.T, k *kubeEnv, ns, name string) *secretWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	q := url.Values{"watch": {"1"}, "fieldSelector": {"metadata.name=" + name}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url+"/api/v1/namespaces/"+ns+"/secrets?"+q.Encode(), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+k.adminToken)
	// No client timeout: the stream lasts as long as the test.
	resp, err := (&http.Client{Transport: k.http.Transport}).Do(req)
	if err != nil {
		cancel()
		require.NoError(t, err, "watching Secret %s/%s", ns, name)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("watching Secret %s/%s: HTTP %d", ns, name, resp.StatusCode)
	}
	w := &secretWatch{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var ev struct {
				Type   string     `json:"type"`
				Object kubeSecret `json:"object"`
			}
			err := dec.Decode(&ev)
			w.mu.Lock()
			if err != nil {
				w.err = err
				w.mu.Unlock()
				return
			}
			w.events = append(w.events, secretEvent{typ: ev.Type, resourceVersion: ev.Object.Metadata.ResourceVersion, at: time.Now()})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

// modifiedSince returns the MODIFIED events after since.
func (w *secretWatch) modifiedSince(since time.Time) []secretEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []secretEvent
	for _, ev := range w.events {
		if ev.typ == "MODIFIED" && ev.at.After(since) {
			out = append(out, ev)
		}
	}
	return out
}

// alive fails the test if the watch stopped: its counts would be short.
func (w *secretWatch) alive(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil && !errors.Is(w.err, context.Canceled) {
		t.Errorf("the watch of the Secret stopped early (%v): its counts are incomplete", w.err)
	}
}
