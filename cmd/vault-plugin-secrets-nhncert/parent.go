package main

import "time"

// A plugin process whose Vault is gone (killed with SIGKILL, crashed) is
// not told: go-plugin stops it only when Vault shuts down in order. Left
// running, it would go on with a background refresh and call NHN for a
// Vault that no longer exists (CONTRACT: "a plugin process whose Vault is
// gone stops calling NHN"). On Unix an orphan is adopted by another
// process (init or a subreaper), so its parent process ID changes: that is
// the sign watchParent waits for.

// parentPoll is how often the parent is looked at.
const parentPoll = 200 * time.Millisecond

// watchParent calls gone, once, when ppid no longer returns what it
// returned first; it looks every poll. It returns after gone, or when
// stop is closed.
func watchParent(ppid func() int, poll time.Duration, stop <-chan struct{}, gone func()) {
	first := ppid()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if ppid() != first {
			gone()
			return
		}
	}
}
