package main

import (
	"context"
	"net/http/httptest"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin/pb"

	nhncert "github.com/nhncert/vault-plugin-secrets-nhncert"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// BenchmarkPluginRead compares, in one process and without Vault, what the
// plugin process does for one read of a cached certificate: nhncert (built
// with its public Factory, its cache filled from an in-process emulator)
// against this null plugin holding the same map. "handler" is
// Backend.HandleRequest; "handler+pb" adds the translation to the gRPC
// response (pb.LogicalResponseToProtoResponse JSON-encodes the data map on
// every response), which every external plugin does before the hop back to
// Vault. What these leave out (gRPC, TLS, Vault itself) is the same for both.
func BenchmarkPluginRead(b *testing.B) {
	ctx := context.Background()
	emu := emulator.New(emulator.Options{AppKey: "demo-app-key", AccessKeyID: "demo-access-key-id", SecretAccessKey: "demo-secret-access-key"})
	if err := emu.SeedDemo(); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	b.Cleanup(srv.Close)

	conf := func() *logical.BackendConfig {
		return &logical.BackendConfig{Logger: hclog.NewNullLogger(), System: logical.TestSystemView(), Config: map[string]string{}, StorageView: &logical.InmemStorage{}}
	}
	nb, err := nhncert.Factory(ctx, conf())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nb.Cleanup(ctx) })
	nStore := &logical.InmemStorage{}
	if _, err := handle(ctx, nb, nStore, logical.UpdateOperation, "config", map[string]any{
		"endpoint": srv.URL, "auth_endpoint": srv.URL, "refresh_interval": "0",
		"app_key": "demo-app-key", "access_key_id": "demo-access-key-id", "secret_access_key": "demo-secret-access-key",
	}); err != nil {
		b.Fatal(err)
	}
	first, err := handle(ctx, nb, nStore, logical.ReadOperation, "certs/example.com", nil)
	if err != nil {
		b.Fatal(err)
	}

	null, err := factory(ctx, conf())
	if err != nil {
		b.Fatal(err)
	}
	nullStore := &logical.InmemStorage{}
	if _, err := handle(ctx, null, nullStore, logical.UpdateOperation, "certs/example.com", first.Data); err != nil {
		b.Fatal(err)
	}

	for _, c := range []struct {
		name    string
		backend logical.Backend
		storage logical.Storage
	}{{"nhncert", nb, nStore}, {"null", null, nullStore}} {
		req := &logical.Request{Operation: logical.ReadOperation, Path: "certs/example.com", Storage: c.storage, MountPoint: c.name + "/"}
		b.Run("handler/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				resp, err := c.backend.HandleRequest(ctx, req)
				if err != nil || resp == nil || len(resp.Data) != len(first.Data) {
					b.Fatalf("read: %v", err)
				}
			}
		})
		b.Run("handler+pb/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				resp, err := c.backend.HandleRequest(ctx, req)
				if err != nil || resp == nil {
					b.Fatalf("read: %v", err)
				}
				if _, err := pb.LogicalResponseToProtoResponse(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func handle(ctx context.Context, b logical.Backend, s logical.Storage, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	resp, err := b.HandleRequest(ctx, &logical.Request{Operation: op, Path: path, Data: data, Storage: s, MountPoint: "bench/"})
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	return resp, err
}
