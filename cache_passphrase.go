package nhncert

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
)

// The cache and the passphrases of encrypted keys (certfile/encrypted.go,
// path_passphrases.go).
//
// What is cached: the file as NHN sent it, still encrypted, in memory and
// in storage alike; a load from storage decrypts it again with the
// passphrase stored then. No cache entry ever holds the passphrase, and the
// key in a stored entry is as protected as NHN holds it.
//
// A file whose key cannot be opened (no passphrase set, a wrong one, a
// scheme the engine does not read) is never cached: a read asks NHN again,
// as for any file that does not parse, so that a passphrase written on
// another node or a file fixed in NHN's console is seen at once. What is
// remembered, in memory only, is that it was refused (refusedFiles): for
// the background refresh, the refusal is the certificate's state until
// the passphrase is written or deleted, NHN's list describes another file,
// or cache_ttl has passed, and until then no run downloads the file again.
// Without it every run that finds a cached certificate rotated upstream to
// a file with an encrypted key would download the file only to refuse it
// again, once per refresh_interval, for as long as the old copy is held.
//
// Writing or deleting a passphrase drops the certificate's cached copy and
// refusal under the name's lock (changePassphrase), and counts a
// passphrase epoch: a download that began before the change and ends after
// it neither stores a copy it decrypted with the old passphrase (keep) nor
// records a refusal made with it (noteRefused).

// maxRefusedFiles bounds the refusals kept; past it one is dropped (that
// name is simply downloaded once more).
const maxRefusedFiles = 16384

// refusedFiles holds the refusals, by config generation and name.
type refusedFiles struct {
	mu   sync.Mutex
	recs map[string]refusedFile
}

type refusedFile struct {
	name   string
	listed *certInfo // what NHN's list said when the file was refused; nil when unknown
	at     time.Time
	cause  error // an *encryptedKeyError
}

func (r *refusedFiles) note(gen, name string, listed *certInfo, at time.Time, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recs == nil {
		r.recs = map[string]refusedFile{}
	}
	k := retryKey(gen, name)
	if _, ok := r.recs[k]; !ok && len(r.recs) >= maxRefusedFiles {
		for old := range r.recs {
			delete(r.recs, old)
			break
		}
	}
	r.recs[k] = refusedFile{name: name, listed: listed, at: at, cause: cause}
}

// lookup returns name's refusal while it still describes the file NHN
// holds: younger than ttl, and the list (listed, nil when unknown) says
// nothing of another file. A refusal made before any list is compared with
// nothing: the first list costs one more download, which records it.
func (r *refusedFiles) lookup(gen, name string, listed *certInfo, now time.Time, ttl time.Duration) (refusedFile, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := retryKey(gen, name)
	rec, ok := r.recs[k]
	if !ok {
		return refusedFile{}, false
	}
	changed := listed != nil && (rec.listed == nil || describesAnotherFile(listed, rec.listed))
	if changed || !now.Before(rec.at.Add(ttl)) {
		delete(r.recs, k)
		return refusedFile{}, false
	}
	return rec, true
}

// forget drops name's refusal in generation (a download opened the file).
func (r *refusedFiles) forget(gen, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.recs, retryKey(gen, name))
}

// forgetName drops name's refusals in every generation.
func (r *refusedFiles) forgetName(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, rec := range r.recs {
		if rec.name == name {
			delete(r.recs, k)
		}
	}
}

// forgetWhere drops the refusals of the names match selects.
func (r *refusedFiles) forgetWhere(match func(name string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, rec := range r.recs {
		if match(rec.name) {
			delete(r.recs, k)
		}
	}
}

func (r *refusedFiles) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = nil
}

// errFileRefused is the background refresh's error for a name whose file
// was refused lately (an encrypted key it cannot open): it is not
// downloaded again until the passphrase or the file changes; the run
// counts it as deferred.
var errFileRefused = errors.New("the certificate's file was refused lately (an encrypted key that cannot be opened); it is not downloaded again until its passphrase or the file changes")

// noteRefused records that a download begun at passphrase epoch epoch
// refused name's file, unless a passphrase changed since (the refusal may
// be of the old one) or the generation is no longer live.
func (c *certCache) noteRefused(gen, name string, listed *certInfo, epoch uint64, at time.Time, cause error) {
	l := locksutil.LockForKey(c.locks, name)
	l.Lock()
	defer l.Unlock()
	if c.passphraseEpoch.Load() != epoch || !c.gate.admit(gen) {
		return
	}
	defer c.gate.release()
	c.refused.note(gen, name, listed, at, cause)
}

// changePassphrase runs change (a passphrase's write or delete) and drops
// name's cached copy (memory, index and storage) and refusals, all under
// the name's lock, the lock every write of the cache takes: a download of
// name lands either before (and is dropped here) or after, and then sees
// the epoch moved (keep, noteRefused). The removals need no admission by
// the write gate: they only remove, which is right under any config, and
// they must happen also when no config is live (before the first request
// after a restart).
func (c *certCache) changePassphrase(ctx context.Context, s logical.Storage, name string, change func() error) error {
	l := locksutil.LockForKey(c.locks, name)
	l.Lock()
	defer l.Unlock()
	if err := change(); err != nil {
		return err
	}
	c.passphraseEpoch.Add(1)
	c.drops.Add(1)
	c.forgetMemory(name)
	c.index.remove(name)
	c.refused.forgetName(name)
	if err := deleteStoredEntry(ctx, s, name); err != nil && !errors.Is(err, logical.ErrReadOnly) {
		return fmt.Errorf("the passphrase of %s was changed, but its cached copy cannot be removed from storage: %w", safetext.Quote(name), err)
	}
	return nil
}

// forgetPassphraseKey is Invalidate's for a passphrase another node wrote
// or deleted: that node dropped the stored copy (whose own invalidation
// drops the memory copy here); this node's refusals of the name, and any
// copy it holds in memory only (a performance standby), go too.
func (c *certCache) forgetPassphraseKey(key string) {
	c.passphraseEpoch.Add(1)
	match := func(name string) bool { return passphraseKey(name) == key }
	c.refused.forgetWhere(match)
	for _, name := range c.memory.Keys() {
		if match(name) {
			c.memory.Remove(name)
		}
	}
}

// passphraseOf is the passphrase source of name's file: the entry in
// storage when asked (only for an encrypted key).
func passphraseOf(ctx context.Context, s logical.Storage, name string) certfile.Passphrase {
	return func() ([]byte, error) {
		pe, err := readPassphrase(ctx, s, name)
		if err != nil || pe == nil {
			return nil, err
		}
		return []byte(pe.Passphrase), nil
	}
}
