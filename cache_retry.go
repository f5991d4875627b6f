package nhncert

import (
	"sync"
	"time"
)

// While NHN fails for a certificate whose cached copy can still be served,
// the engine asks NHN about it at most once per retry window: about 10 s
// after the first failure, doubling with each one up to rotation_period or
// 5 minutes, whichever is longer. Reads in between serve the copy with the
// stale warning without calling NHN, and their ttl counts to the next
// attempt; a success (or NHN saying the certificate is gone) ends the
// window. This is what keeps an hour's outage from turning every read,
// and every Agent and VSO re-read, into NHN calls.

const (
	firstRetryWindow = 10 * time.Second
	minRetryCap      = 5 * time.Minute
)

// retryWindows holds the open windows, by generation and name.
type retryWindows struct {
	mu   sync.Mutex
	open map[string]retryWindow
}

type retryWindow struct {
	failures int
	next     time.Time // the next attempt
	cause    string    // the last failure, for the warning
}

func retryKey(gen, name string) string { return gen + "\x00" + name }

// retryCap is the longest window: rotation_period or 5 minutes.
func retryCap(cfg *nhnConfig) time.Duration {
	return max(rotationPeriod(cfg), minRetryCap)
}

// failed opens or widens name's window after a failed download at now.
func (w *retryWindows) failed(gen, name string, now time.Time, limit time.Duration, cause string) retryWindow {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open == nil {
		w.open = map[string]retryWindow{}
	}
	k := retryKey(gen, name)
	r := w.open[k]
	d := firstRetryWindow
	for i := 0; i < r.failures && d < limit; i++ {
		d *= 2
	}
	r.failures++
	r.next, r.cause = now.Add(min(d, limit)), cause
	w.open[k] = r
	return r
}

// ended closes name's window.
func (w *retryWindows) ended(gen, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.open, retryKey(gen, name))
}

// pending returns name's window when its next attempt is after now.
func (w *retryWindows) pending(gen, name string, now time.Time) (retryWindow, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.open[retryKey(gen, name)]
	return r, ok && now.Before(r.next)
}

// clear closes every window (a purge).
func (w *retryWindows) clear() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.open = nil
}
