package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// perfFreq is the sampling frequency of the profiles (Hz), a prime so that
// sampling does not beat with periodic work.
const perfFreq = 997

// perfProfile is what perf saw of one plugin process during a load slot.
type perfProfile struct {
	target  string
	file    string // perf.data
	samples int
	self    map[string]int // by leaf symbol
	incl    map[string]int // by symbol anywhere in the stack (once per sample)
	stacks  [][]string     // leaf first
	reqs    int64          // requests served while it recorded
}

// perfAvailable reports whether perf can record (it needs to be installed
// and allowed by kernel.perf_event_paranoid, or root).
func perfAvailable() error {
	if _, err := exec.LookPath("perf"); err != nil {
		return fmt.Errorf("perf is not installed")
	}
	out, err := exec.Command("perf", "record", "-N", "-q", "-o", "/dev/null", "-e", "cpu-clock", "--", "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("perf record does not work here: %v: %s", err, truncate(strings.TrimSpace(string(out)), 200))
	}
	return nil
}

// recordPerf samples pid's on-CPU stacks (frame pointers: Go keeps them on
// amd64 and arm64) for d.
func recordPerf(ctx context.Context, pid int, d time.Duration, file string) error {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	secs := fmt.Sprintf("%.1f", d.Seconds())
	// -N: no copy of every profiled binary into ~/.debug (Vault alone is
	// 200 MB); the reports are made while the binaries are in place.
	cmd := exec.CommandContext(ctx, "perf", "record", "-N", "-q", "-e", "cpu-clock", "-F", fmt.Sprint(perfFreq), "-g",
		"-p", fmt.Sprint(pid), "-o", file, "--", "sleep", secs)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("perf record -p %d: %v: %s", pid, err, truncate(strings.TrimSpace(string(out)), 300))
	}
	return nil
}

// readPerf turns perf.data into per-symbol sample counts.
func readPerf(ctx context.Context, target, file string) (*perfProfile, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "perf", "script", "-i", file, "-F", "ip,sym")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := parsePerfScript(stdout)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("perf script: %v: %s", err, truncate(stderr.String(), 300))
	}
	p.target, p.file = target, file
	return p, nil
}

// parsePerfScript reads `perf script -F ip,sym` output: one frame per line
// ("<hex ip> <symbol>"), samples separated by blank lines, leaf first.
func parsePerfScript(r io.Reader) *perfProfile {
	p := &perfProfile{self: map[string]int{}, incl: map[string]int{}}
	var stack []string
	flush := func() {
		if len(stack) == 0 {
			return
		}
		p.samples++
		p.self[stack[0]]++
		seen := make(map[string]bool, len(stack))
		for _, s := range stack {
			if !seen[s] {
				seen[s] = true
				p.incl[s]++
			}
		}
		p.stacks = append(p.stacks, stack)
		stack = nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			flush()
			continue
		}
		_, sym, ok := strings.Cut(line, " ")
		if !ok {
			sym = "[unknown]"
		}
		stack = append(stack, cleanSymbol(strings.TrimSpace(sym)))
	}
	flush()
	return p
}

// cleanSymbol drops perf's "+0x1f" offsets and the module path prefix of
// Go symbols, to keep the table narrow.
func cleanSymbol(s string) string {
	if i := strings.LastIndex(s, "+0x"); i > 0 {
		s = s[:i]
	}
	for _, pre := range []string{"github.com/hashicorp/vault/sdk/", "github.com/nhncert/vault-plugin-secrets-nhncert.", "google.golang.org/"} {
		s = strings.Replace(s, pre, "", 1)
	}
	return s
}

// profileGroup is a row of the side-by-side breakdown: the share of samples
// whose stack holds any of the symbols matching one of the substrings.
type profileGroup struct {
	label string
	match []string
}

var profileGroups = []profileGroup{
	{"request handler (pathCertsRead / null read)", []string{"(*backend).pathCertsRead", "main.(*backend).read"}},
	{"  cache lookup (certCache.lookup)", []string{"(*certCache).lookup"}},
	{"  mount state (backend.mount)", []string{"(*backend).mount"}},
	{"  maps.Clone of the cached map", []string{"maps.clone", "maps.Clone"}},
	{"  FieldData.Get (request fields)", []string{"(*FieldData).Get"}},
	{"storage calls back to Vault (gRPC)", []string{"(*GRPCStorageClient)", "(*gRPCStorageClient)"}},
	{"PEM / x509 parsing", []string{"encoding/pem.", "crypto/x509."}},
	{"framework Backend.HandleRequest", []string{"framework.(*Backend).HandleRequest"}},
	{"  path match (regexp)", []string{"regexp."}},
	{"plugin gRPC HandleRequest (server side)", []string{"(*backendGRPCPluginServer).HandleRequest"}},
	{"  response -> protobuf (LogicalResponseToProtoResponse)", []string{"LogicalResponseToProtoResponse"}},
	{"  JSON encoding (encoding/json)", []string{"encoding/json."}},
	{"gRPC transport (grpc.*)", []string{"grpc/internal/transport.", "grpc.(*Server)", "grpc.(*serverStream)"}},
	{"  TLS (crypto/tls)", []string{"crypto/tls."}},
	{"mutex contention (lockSlow / semacquire)", []string{"sync.(*Mutex).lockSlow", "sync.(*RWMutex).RLock", "runtime.semacquire", "sync.runtime_Semacquire"}},
	{"allocation (runtime.mallocgc)", []string{"runtime.mallocgc"}},
	{"GC (gcBgMarkWorker / gcAssist)", []string{"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc"}},
	{"scheduler (runtime.schedule)", []string{"runtime.schedule", "runtime.findRunnable"}},
	{"syscalls (read/write/futex/epoll)", []string{"syscall.Syscall", "syscall.RawSyscall", "internal/runtime/syscall.Syscall6", "runtime.futex", "runtime.netpoll", "runtime.epollwait"}},
}

// vaultGroups break down the Vault process's time for one read.
var vaultGroups = []profileGroup{
	{"HTTP handling (http.(*conn).serve)", []string{"net/http.(*conn).serve"}},
	{"  Core request handling (switchedLockHandleRequest)", []string{"vault.(*Core).switchedLockHandleRequest"}},
	{"    token lookup and check", []string{"vault.(*Core).CheckToken", "vault.(*Core).PopulateTokenEntry"}},
	{"    router -> backend (Router.routeCommon)", []string{"vault.(*Router).routeCommon"}},
	{"      plugin gRPC client HandleRequest", []string{"(*backendGRPCPluginClient).HandleRequest"}},
	{"        protobuf -> response (ProtoResponseToLogicalResponse)", []string{"ProtoResponseToLogicalResponse"}},
	{"      KV read (PassthroughBackend.handleReadOrRenew)", []string{"(*PassthroughBackend).handleReadOrRenew"}},
	{"      barrier / storage (AESGCMBarrier)", []string{"(*AESGCMBarrier)"}},
	{"  JSON answer to the client (http.respondOk)", []string{"http.respondOk"}},
	{"JSON decoding (encoding/json decode)", []string{"encoding/json.(*decodeState)", "encoding/json.Unmarshal", "jsonutil.DecodeJSON"}},
	{"JSON encoding (encoding/json encode)", []string{"encoding/json.(*encodeState)", "encoding/json.Marshal", "(*Encoder).Encode"}},
	{"gRPC transport (grpc.*)", []string{"grpc/internal/transport.", "grpc.(*ClientConn)", "grpc.invoke", "grpc.(*clientStream)"}},
	{"TLS (crypto/tls)", []string{"crypto/tls."}},
	{"allocation (runtime.mallocgc)", []string{"runtime.mallocgc"}},
	{"GC (gcBgMarkWorker / gcAssist)", []string{"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc"}},
	{"syscalls (read/write/futex/epoll)", []string{"syscall.Syscall", "syscall.RawSyscall", "internal/runtime/syscall.Syscall6", "runtime.futex", "runtime.netpoll", "runtime.epollwait"}},
}

func (p *perfProfile) share(g profileGroup) float64 {
	if p == nil || p.samples == 0 {
		return 0
	}
	n := 0
	for _, st := range p.stacks {
		hit := false
		for _, s := range st {
			for _, m := range g.match {
				if strings.Contains(s, m) {
					hit = true
					break
				}
			}
			if hit {
				break
			}
		}
		if hit {
			n++
		}
	}
	return float64(n) / float64(p.samples)
}

// topSelf returns the n symbols with the most samples of their own.
func (p *perfProfile) topSelf(n int) []string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range p.self {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	var out []string
	for i := 0; i < n && i < len(all); i++ {
		out = append(out, fmt.Sprintf("%5.1f%%  %s", 100*float64(all[i].v)/float64(p.samples), all[i].k))
	}
	return out
}

// pluginFrames returns, by inclusive share, the frames of the plugin's own
// code (package nhncert, or main for the null plugin).
func (p *perfProfile) pluginFrames(n int, prefixes ...string) []string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range p.incl {
		for _, pre := range prefixes {
			if strings.HasPrefix(k, pre) {
				all = append(all, kv{k, v})
				break
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	var out []string
	for i := 0; i < n && i < len(all); i++ {
		out = append(out, fmt.Sprintf("%5.1f%%  %s", 100*float64(all[i].v)/float64(p.samples), all[i].k))
	}
	return out
}

// writeReport writes perf's own report next to perf.data, for a closer look.
func writeReport(ctx context.Context, file string) string {
	out := strings.TrimSuffix(file, filepath.Ext(file)) + ".report.txt"
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "perf", "report", "-i", file, "--stdio", "--no-children",
		"--percent-limit", "0.5", "-g", "caller,0.5,callee", "--sort", "symbol").Output()
	if err != nil {
		return ""
	}
	if os.WriteFile(out, b, 0o644) != nil {
		return ""
	}
	return out
}
