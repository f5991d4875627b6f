package nhncert

import (
	"context"
	"errors"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"
)

// A node paused past an election (SIGSTOP, a frozen VM, a starved host)
// and resumed still believes it is the active one until Vault steps it
// down, and its raft log may lack what the new active node acknowledged
// meanwhile (a config delete). Reads it answers from memory or its
// storage then would serve what the cluster deleted, and a background run
// already under way would go on calling NHN (CONTRACT, "Lifecycle, outages
// and NHN's cost": nothing cached under a deleted config can be served;
// only the active node runs the background refresh).
//
// The pause detector (internal/pause) notices that the process did not run
// for a while. After a pause, the first request that needs the config, and
// a background run before its next call to NHN, confirm that the node is
// still the active one with the refresh claim (refresh_claim.go): a storage
// write, which raft commits only on a leader a quorum still follows. Until
// the next pause no request checks again: the check on the read path is
// one atomic load.
//
// On a node whose storage is not writable (a performance standby or
// secondary) there is nothing to confirm with a write: such a node never
// runs the refresh, and its storage is a replica of the active node's.
// Plain standbys forward every request to the active node.

// errLostLeadership: the node could not confirm it is still the active one
// after a pause. Vault clients retry a 503 (reaching the new active node).
var errLostLeadership = errors.New("this node was paused and could not confirm it is still Vault's active node (it may have lost leadership); retry")

// confirmActive returns nil when no pause happened since the node last
// confirmed it is the active one, or when it confirms so now.
func (b *backend) confirmActive(ctx context.Context, s logical.Storage) error {
	if b.resumed.Clear() {
		return nil
	}
	return b.reconfirmActive(ctx, s)
}

// reconfirmActive is confirmActive past the hot path.
func (b *backend) reconfirmActive(ctx context.Context, s logical.Storage) error {
	err := b.resumed.Confirm(func() error {
		if !b.WriteSafeReplicationState() {
			return nil
		}
		return b.claimRun(ctx, s)
	})
	if err != nil {
		b.Logger().Warn("after a pause this node could not confirm it is still the active one; refusing to serve from its cache",
			"mount", b.logMount(), "error", err)
		return errLostLeadership
	}
	return nil
}

// requestError is errLostLeadership as a request's answer (503), other
// errors unchanged.
func requestError(err error) error {
	if errors.Is(err, errLostLeadership) {
		return logical.CodedError(http.StatusServiceUnavailable, errLostLeadership.Error())
	}
	return err
}

// runMayGoOn is the check between the steps of a background run: after a
// pause (a gap, or a pace timer that fired far later than planned) the
// node claims the run again before its next call to NHN; an error means
// the run stops.
func (b *backend) runMayGoOn(ctx context.Context, s logical.Storage) error {
	if b.resumed.Steady() {
		return nil
	}
	return b.reconfirmActive(ctx, s)
}
