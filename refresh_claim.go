package nhncert

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A node that has lost leadership does not know it at once: the active
// node of a raft cluster paused (SIGSTOP, a long GC, a partition) past the
// election is resumed with its timers overdue, and its plugin would list
// NHN before Vault steps it down, while the new active node runs too.
// Before each run's first call to NHN the loop therefore writes a small
// claim to storage: raft commits a write only on a leader that a quorum
// still follows, so a deposed node's claim fails and its run is not
// started (CONTRACT: "a node that has lost leadership starts no run and
// makes no call to NHN for one, even if its timer fired while it was
// away").

// lateRecheck is how soon a loop whose timer fired late looks again.
const lateRecheck = 2 * time.Second

// lateTimerSlack is how much later than planned a run may start before
// the loop checks again instead: a tenth of the interval, at least 2 s.
func lateTimerSlack(interval time.Duration) time.Duration {
	return max(interval/10, 2*time.Second)
}

// refreshClaim is what the claim holds: when and for which run.
type refreshClaim struct {
	At time.Time `json:"at"`
}

// claimRun writes the claim; an error means this node may not run.
func (b *backend) claimRun(ctx context.Context, s logical.Storage) error {
	v, err := json.Marshal(refreshClaim{At: time.Now().UTC()})
	if err != nil {
		return err
	}
	return s.Put(ctx, &logical.StorageEntry{Key: refreshClaimPath, Value: v})
}
