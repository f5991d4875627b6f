package main

import (
	"sync/atomic"
	"testing"
	"time"
)

// A plugin process whose Vault is gone stops: watchParent notices the
// parent process ID change (adoption by init) within a few polls, and
// calls gone once; while the parent stays, it never does.
func TestWatchParentNoticesTheLostParent(t *testing.T) {
	var parent atomic.Int64
	parent.Store(4242)
	gone := make(chan struct{}, 2)
	stop := make(chan struct{})
	defer close(stop)
	go watchParent(func() int { return int(parent.Load()) }, time.Millisecond, stop, func() { gone <- struct{}{} })

	select {
	case <-gone:
		t.Fatal("gone called while the parent is there")
	case <-time.After(50 * time.Millisecond):
	}
	parent.Store(1)
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the lost parent was not noticed within 10 s")
	}
	select {
	case <-gone:
		t.Fatal("gone called twice")
	case <-time.After(20 * time.Millisecond):
	}
}
