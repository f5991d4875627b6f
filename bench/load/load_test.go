package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var xs []time.Duration
	for i := 1; i <= 100; i++ {
		xs = append(xs, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {0.999, 100}, {1, 100}, {0, 1}} {
		if got := percentile(xs, c.p); got != c.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

// Six rounds put every target in every position, and right after every
// other target, equally often.
func TestRoundOrderBalanced(t *testing.T) {
	pos := map[[2]int]int{}
	after := map[[2]int]int{}
	for r := range 6 {
		o := roundOrder(r)
		for i, x := range o {
			pos[[2]int{x, i}]++
			if i > 0 {
				after[[2]int{o[i-1], x}]++
			}
		}
	}
	for x := range 3 {
		for i := range 3 {
			if pos[[2]int{x, i}] != 2 {
				t.Errorf("target %d in position %d %d times, want 2", x, i, pos[[2]int{x, i}])
			}
			if x != i && after[[2]int{i, x}] != 2 {
				t.Errorf("target %d right after %d %d times, want 2", x, i, after[[2]int{i, x}])
			}
		}
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestParsePerfScript(t *testing.T) {
	out := `	  4a1b2c runtime.mallocgc+0x1f
	  4a1b00 github.com/nhncert/vault-plugin-secrets-nhncert.(*backend).pathCertsRead+0x20
	  4a0000 github.com/hashicorp/vault/sdk/framework.(*Backend).HandleRequest+0x99

	  4a1b2c runtime.mallocgc+0x1f
	  4a1b2c runtime.mallocgc+0x1f

`
	p := parsePerfScript(strings.NewReader(out))
	if p.samples != 2 {
		t.Fatalf("samples = %d, want 2", p.samples)
	}
	if p.self["runtime.mallocgc"] != 2 || p.incl["runtime.mallocgc"] != 2 {
		t.Errorf("mallocgc self %d incl %d, want 2 and 2 (once per sample)", p.self["runtime.mallocgc"], p.incl["runtime.mallocgc"])
	}
	if got := p.share(profileGroups[0]); got != 0.5 {
		t.Errorf("handler share = %v, want 0.5", got)
	}
	if p.incl["framework.(*Backend).HandleRequest"] != 1 {
		t.Errorf("module prefix not trimmed: %v", p.incl)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for u, want := range map[string]bool{
		"http://127.0.0.1:8200": true, "http://localhost:8200": true, "http://[::1]:8200": true,
		"http://10.0.0.1:8200": false, "https://127.0.0.1:8200": false, "http://127.0.0.1.example.com:1": false,
	} {
		if got := isLoopbackURL(u); got != want {
			t.Errorf("isLoopbackURL(%q) = %v, want %v", u, got, want)
		}
	}
}
