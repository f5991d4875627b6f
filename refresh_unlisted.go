package nhncert

import (
	"sync"
	"time"
)

// unlistedNames remembers, in memory, since when NHN's lists have left out
// each cached name (a truncated or glitching list, or a certificate being
// deleted): the plan downloads such a name once to find out, and a
// download that still gets the file confirms it until it falls due again
// (refresh_plan.go). It holds cached names only, of one generation.
type unlistedNames struct {
	mu         sync.Mutex
	generation string
	since      map[string]time.Time
}

// update records what the run's list (listed, taken at now) says of the
// cached names and returns a copy of the map for the plan.
func (u *unlistedNames) update(generation string, now time.Time, cached []string, listed func(string) *certInfo) map[string]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	prev := u.since
	if u.generation != generation {
		prev = nil
	}
	next := make(map[string]time.Time)
	for _, name := range cached {
		if listed(name) != nil {
			continue
		}
		if at, ok := prev[name]; ok {
			next[name] = at
		} else {
			next[name] = now
		}
	}
	u.generation, u.since = generation, next
	out := make(map[string]time.Time, len(next))
	for k, v := range next {
		out[k] = v
	}
	return out
}
