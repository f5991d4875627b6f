package main

import (
	"testing"
	"time"
)

func TestSpread(t *testing.T) {
	mean, p99, maxv := spread([]int64{1, 3, 2, 10})
	if mean != 4 || p99 != 10 || maxv != 10 {
		t.Fatalf("spread = %v, %v, %v; want 4, 10, 10", mean, p99, maxv)
	}
	if m, p, x := spread(nil); m != 0 || p != 0 || x != 0 {
		t.Fatalf("spread(nil) = %v, %v, %v", m, p, x)
	}
}

func TestPct(t *testing.T) {
	lat := []time.Duration{time.Microsecond, 2 * time.Millisecond, 200 * time.Millisecond}
	if got := pct(lat, 0.5); got != "2ms" {
		t.Fatalf("p50 = %s", got)
	}
	if got := pct(lat, 1); got != "200ms" {
		t.Fatalf("max = %s", got)
	}
	if got := pct(lat, 0); got != "1µs" {
		t.Fatalf("min = %s", got)
	}
}
