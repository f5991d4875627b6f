// Command nullplugin is a benchmark reference, not shipped: the cheapest
// possible external secrets plugin. Its certs/<name> answers a read with a
// map held in memory (written once with a write), so that a load test can
// compare nhncert's cached read with the floor every external plugin pays:
// Vault's gRPC hop and JSON encoding.
package main

import (
	"context"
	"maps"
	"os"
	"strings"
	"sync"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

type backend struct {
	*framework.Backend
	mu   sync.RWMutex
	data map[string]map[string]any
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := &backend{data: map[string]map[string]any{}}
	b.Backend = &framework.Backend{
		Help:        "benchmark reference: serves maps held in memory",
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern: "certs/" + framework.MatchAllRegex("name"),
			Fields:  map[string]*framework.FieldSchema{"name": {Type: framework.TypeString}},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   &framework.PathOperation{Callback: b.read},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.write},
			},
		}},
		RunningVersion: "v0.0.1",
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *backend) read(_ context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.mu.RLock()
	m := b.data[d.Get("name").(string)]
	b.mu.RUnlock()
	if m == nil {
		return nil, nil
	}
	// A shallow copy, as nhncert makes of its cached map.
	return &logical.Response{Data: maps.Clone(m)}, nil
}

func (b *backend) write(_ context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	m := maps.Clone(req.Data)
	delete(m, "name")
	// ca_chain and dns_names arrive as []any; keep them as nhncert holds them.
	for _, k := range []string{"ca_chain", "dns_names"} {
		if v, ok := m[k].([]any); ok {
			s := make([]string, len(v))
			for i := range v {
				s[i], _ = v[i].(string)
			}
			m[k] = s
		}
	}
	b.mu.Lock()
	b.data[strings.TrimSpace(name)] = m
	b.mu.Unlock()
	return nil, nil
}

func main() {
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{BackendFactoryFunc: factory}); err != nil {
		hclog.Default().Error("nullplugin", "error", err)
		os.Exit(1)
	}
}
