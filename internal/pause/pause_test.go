package pause

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Duration  { return time.Duration(c.t.Load()) }
func (c *fakeClock) add(d time.Duration) { c.t.Add(int64(d)) }
func newFake() (*fakeClock, *Detector)   { c := &fakeClock{}; return c, New(time.Second, c.now) }
func ticks(c *fakeClock, d *Detector, n int) {
	for range n {
		c.add(200 * time.Millisecond)
		d.Observe()
	}
}

func TestGateClearWhileTicking(t *testing.T) {
	c, d := newFake()
	g := d.NewGate()
	for range 20 {
		ticks(c, d, 1)
		if !g.Clear() {
			t.Fatal("not clear while the process kept running")
		}
	}
	if d.Epoch() != 0 {
		t.Fatalf("epoch %d without a pause", d.Epoch())
	}
}

// A call right after the resume, before the ticker ran again, sees the
// pause: the gap is measured from the last observation.
func TestGateNotClearRightAfterAPause(t *testing.T) {
	c, d := newFake()
	g := d.NewGate()
	ticks(c, d, 3)
	if !g.Clear() {
		t.Fatal("not clear before the pause")
	}
	c.add(5 * time.Second) // stopped; no tick ran
	if g.Clear() {
		t.Fatal("clear right after a 5 s pause")
	}
	if g.Clear() {
		t.Fatal("clear again without a confirmation")
	}
	// A failed check leaves it closed; a good one opens it until the next
	// pause, with no check meanwhile.
	refused := errors.New("refused")
	if err := g.Confirm(func() error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("Confirm: %v", err)
	}
	if g.Clear() {
		t.Fatal("clear after a failed confirmation")
	}
	checks := 0
	if err := g.Confirm(func() error { checks++; return nil }); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		ticks(c, d, 1)
		if !g.Clear() {
			t.Fatal("not clear after the confirmation")
		}
		if err := g.Confirm(func() error { checks++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if checks != 1 {
		t.Fatalf("%d checks for one pause", checks)
	}
}

func TestLateTimerIsAPause(t *testing.T) {
	c, d := newFake()
	g := d.NewGate()
	ticks(c, d, 1)
	if d.Late(500 * time.Millisecond) {
		t.Fatal("half a second late is no pause")
	}
	if !d.Late(3 * time.Second) {
		t.Fatal("3 s late is a pause")
	}
	if g.Steady() {
		t.Fatal("steady after a late timer")
	}
}

// A pause during the check itself is not confirmed by it.
func TestPauseDuringTheCheck(t *testing.T) {
	c, d := newFake()
	g := d.NewGate()
	c.add(2 * time.Second)
	err := g.Confirm(func() error { c.add(2 * time.Second); return nil })
	if !errors.Is(err, ErrPausedAgain) {
		t.Fatalf("Confirm: %v", err)
	}
	if g.Clear() {
		t.Fatal("clear after a pause during the check")
	}
}

// The hot path stays cheap: no allocation.
func BenchmarkGateClear(b *testing.B) {
	d := New(Threshold, Monotonic())
	g := d.NewGate()
	b.ReportAllocs()
	for b.Loop() {
		if !g.Clear() {
			d.Observe()
		}
	}
}
