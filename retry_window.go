package nhncert

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// While NHN fails for a certificate (down, 5xx, 429, timeouts), the engine
// asks NHN about it at most once per retry window: about 10 s after the
// first failure, doubling with each one up to rotation_period or 5
// minutes, whichever is longer. Reads in between serve the cached copy
// with the stale warning without calling NHN (or, with no usable copy,
// fail at once), their ttl counts to the next attempt, and the background
// refresh leaves the name to a later run. A refresh=true read asks anyway.
// A success ends the window. With a copy to serve, or once the name has
// failed, a download is tried once, not retried (nhn.WithOneAttempt).
//
// Without it an outage multiplies NHN's load instead of sparing it: every
// read of a stale copy made three attempts, and its ttl of 3 s brought
// every Agent and VSO back to make three more.

const (
	// firstRetryWindow is the window after the first failure.
	firstRetryWindow = 10 * time.Second
	// minRetryCap is the longest window when rotation_period is shorter.
	minRetryCap = 5 * time.Minute
	// maxRetryWindows bounds the windows kept; past it the one whose next
	// attempt comes first is dropped (that name is simply asked sooner).
	maxRetryWindows = 16384
)

// errInRetryWindow is the background refresh's error for a name whose
// window is open: the run counts it as deferred, not failed.
var errInRetryWindow = errors.New("NHN failed for this certificate lately; its retry window is open")

// retryWindows holds the open windows, by config generation and name, so
// that a new config starts with none.
type retryWindows struct {
	mu   sync.Mutex
	open map[string]retryWindow
	max  int           // the bound; 0 means maxRetryWindows
	base time.Duration // the first window; 0 means firstRetryWindow (tests shorten it)
}

type retryWindow struct {
	failures int
	next     time.Time // the next attempt
	cause    error     // the last failure, for the warning and the error
}

func retryKey(gen, name string) string { return gen + "\x00" + name }

// retryCap is the longest window: rotation_period or 5 minutes.
func retryCap(cfg *nhnConfig) time.Duration {
	return max(rotationPeriod(cfg), minRetryCap)
}

// width is the window after failure k (1-based): the first window
// doubled k-1 times, at most limit.
func (w *retryWindows) width(k int, limit time.Duration) time.Duration {
	d := w.base
	if d <= 0 {
		d = firstRetryWindow
	}
	for i := 1; i < k && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// isOutage reports whether err is NHN failing rather than answering: no
// usable answer after every attempt, a 5xx or a 429. A not-found, bad
// credentials or a file that does not parse is an answer; asking again
// soon is what an operator who fixes it expects.
func isOutage(err error) bool {
	var ue *nhn.Error
	if !errors.As(err, &ue) {
		return false
	}
	return ue.Unreachable || ue.HTTPStatus >= 500 || ue.HTTPStatus == http.StatusTooManyRequests
}

// failed opens or widens name's window after a failed attempt at now.
func (w *retryWindows) failed(gen, name string, now time.Time, limit time.Duration, cause error) retryWindow {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open == nil {
		w.open = map[string]retryWindow{}
	}
	k := retryKey(gen, name)
	r, ok := w.open[k]
	if !ok {
		w.makeRoom()
	}
	r.failures++
	r.next, r.cause = now.Add(w.width(r.failures, limit)), cause
	w.open[k] = r
	return r
}

// makeRoom drops, when the bound is reached, the window whose next
// attempt comes first. A scan: it runs only when that many certificates
// fail at once, each at most once per window.
func (w *retryWindows) makeRoom() {
	bound := w.max
	if bound <= 0 {
		bound = maxRetryWindows
	}
	for len(w.open) >= bound {
		var first string
		var at time.Time
		for k, r := range w.open {
			if first == "" || r.next.Before(at) {
				first, at = k, r.next
			}
		}
		delete(w.open, first)
	}
}

// ended closes name's window: NHN answered for it.
func (w *retryWindows) ended(gen, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.open, retryKey(gen, name))
}

// lookup returns name's window, open or past, if NHN's last answer for
// it was a failure.
func (w *retryWindows) lookup(gen, name string) (retryWindow, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.open[retryKey(gen, name)]
	return r, ok
}

// pending returns name's window when its next attempt is after now.
func (w *retryWindows) pending(gen, name string, now time.Time) (retryWindow, bool) {
	r, ok := w.lookup(gen, name)
	return r, ok && now.Before(r.next)
}

// clear closes every window (a purge, a new config).
func (w *retryWindows) clear() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.open = nil
}

// size is how many windows are kept.
func (w *retryWindows) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.open)
}

// retryWindowError is a read of a name in its window with no copy to
// serve: it says what NHN did last and when it is asked again. It unwraps
// to that failure, so that the caller sees the same 502.
type retryWindowError struct {
	name  string
	next  time.Time
	cause error
}

func (e *retryWindowError) Error() string {
	return fmt.Sprintf("NHN failed for %s: %v; it is asked again at %s",
		safetext.Quote(e.name), e.cause, e.next.UTC().Format(time.RFC3339))
}

func (e *retryWindowError) Unwrap() error { return e.cause }

// staleWarning is the warning of a copy served while NHN fails for it;
// next, when NHN's failure opened a window, is when it is asked again.
func staleWarning(name string, old *cacheEntry, cause error, next time.Time) string {
	w := fmt.Sprintf("serving the copy of %s cached at %s, which may be stale: refreshing it failed: %v",
		safetext.Quote(name), old.fetchedAt.UTC().Format(time.RFC3339), cause)
	if !next.IsZero() {
		w += "; NHN is asked again at " + next.UTC().Format(time.RFC3339)
	}
	return w
}
