package nhncert

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// BenchmarkHostsHit compares, in process, a cached read of hosts/<hostname>
// (three candidates, one a wildcard) with the cached read of the
// certificate it chooses through certs/<name>.
func BenchmarkHostsHit(b *testing.B) {
	h := newHarness(b)
	h.configure(nil)
	h.putChain("example.com", emulator.ChainOptions{DNSNames: []string{"example.com", "www.example.com"}}, emulator.FileOptions{IncludeRoot: true})
	h.putChain("*.example.com", emulator.ChainOptions{}, emulator.FileOptions{IncludeRoot: true})
	h.putChain("www (2027)", emulator.ChainOptions{CommonName: "www.example.com"}, emulator.FileOptions{IncludeRoot: true})
	for i := range 50 {
		h.putChain("other"+string(rune('a'+i%26))+string(rune('a'+i/26))+".org", emulator.ChainOptions{}, emulator.FileOptions{})
	}
	resp := h.hostRead("www.example.com", nil)
	chosen := resp.Data["certificate_name"].(string)
	for _, c := range []struct{ name, path string }{{"certs", "certs/" + chosen}, {"hosts", "hosts/www.example.com"}} {
		b.Run(c.name, func(b *testing.B) {
			req := &logical.Request{Operation: logical.ReadOperation, Path: c.path, Storage: h.storage, MountPoint: "nhncert/"}
			ctx := context.Background()
			b.ReportAllocs()
			for range b.N {
				resp, err := h.b.HandleRequest(ctx, req)
				if err != nil || resp == nil || resp.IsError() {
					b.Fatalf("read failed: %v %v", err, resp)
				}
			}
		})
	}
}
