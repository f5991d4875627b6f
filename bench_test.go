package nhncert

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/pause"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// BenchmarkCacheHit measures the in-process hot path: a read of a cached
// certificate, from request to response, with 10 and 10,000 certificates
// in the cache. Allocations per hit must not grow with the cache.
func BenchmarkCacheHit(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("cached=%d", n), func(b *testing.B) {
			h := newHarness(b)
			// The process's pause detector, as in production: the read
			// path's check after a pause costs its hot path here.
			h.b.resumed = pause.Default().NewGate()
			h.configure(nil)
			h.putChain("example.com", emulator.ChainOptions{}, emulator.FileOptions{IncludeRoot: true})
			h.read("example.com", nil)
			st := mustSession(h)
			hot := h.b.cache.get("example.com", st.cfg.Generation)
			// Fill the cache with n-1 more entries sharing the parsed file.
			h.b.cache.resize(n + 1)
			for i := 1; i < n; i++ {
				e := &cacheEntry{name: fmt.Sprintf("bulk%05d.example.com", i), generation: hot.generation,
					file: hot.file, bundle: hot.bundle, fetchedAt: hot.fetchedAt, data: hot.data}
				h.b.cache.putMemory(e)
			}
			if got := h.b.cache.memoryLen(); got != n {
				b.Fatalf("cache holds %d entries, want %d", got, n)
			}
			req := &logical.Request{Operation: logical.ReadOperation, Path: "certs/example.com", Storage: h.storage, MountPoint: "nhncert/"}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				resp, err := h.b.HandleRequest(ctx, req)
				if err != nil || resp == nil || resp.Data["certificate"] == "" {
					b.Fatalf("read failed: %v", err)
				}
			}
			b.StopTimer()
			if calls := h.fileCalls("example.com"); calls != 1 {
				b.Fatalf("%d downloads, want 1", calls)
			}
		})
	}
}

// BenchmarkParseBundle measures splitting a certificate file: leaf, two
// intermediates and a root, shuffled, with an RSA key.
func BenchmarkParseBundle(b *testing.B) {
	ca, err := emulator.NewCA(2)
	if err != nil {
		b.Fatal(err)
	}
	ch, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: "example.com", KeyType: emulator.RSA, CA: ca})
	if err != nil {
		b.Fatal(err)
	}
	file := ch.PEMFile(emulator.FileOptions{IncludeRoot: true, KeyFirst: true})
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	for range b.N {
		bn, err := certfile.Parse(file, nil)
		if err != nil || len(bn.Chain) != 3 {
			b.Fatalf("parse: %v", err)
		}
	}
}

// BenchmarkListMerge measures merging 100 list pages of 100 certificates
// (10,000 in all), in reverse order, into one sorted list.
func BenchmarkListMerge(b *testing.B) {
	pages := make([][]certInfo, 100)
	for p := range pages {
		pages[p] = make([]certInfo, 100)
		for i := range pages[p] {
			n := (99-p)*100 + i
			pages[p][i] = certInfo{Name: fmt.Sprintf("bulk%05d.example.com", n), ExpirationDate: "2030-01-01"}
		}
	}
	b.ReportAllocs()
	for range b.N {
		infos, _ := servable(nhn.MergePages(pages))
		if len(infos) != 10000 || infos[0].Name != "bulk00000.example.com" {
			b.Fatal("bad merge")
		}
	}
}
