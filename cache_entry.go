package nhncert

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
)

// cacheEntry is one downloaded, checked certificate file, parsed and ready
// to serve.
type cacheEntry struct {
	name       string
	generation string
	file       []byte
	bundle     *certfile.Bundle
	// fetchedAt is when the download of this file began: a copy is never
	// older than it says.
	fetchedAt time.Time
	// data is the read response for the default format, built once.
	data map[string]any
	// notes are warnings every read of this entry carries.
	notes []string
	// listedAtDownload is what NHN's list said of the certificate when the
	// file was downloaded (nil when unknown); a later list that differs
	// means the certificate was rotated upstream.
	listedAtDownload atomic.Pointer[certInfo]

	lastUsed atomic.Int64 // unix nanoseconds of the last read
	// passphraseEpoch is the cache's passphrase epoch when the download
	// began (cache_passphrase.go).
	passphraseEpoch uint64
}

// newEntry parses file and builds the entry, or says why the file is not
// servable. Nothing is cached from a file that fails here. pass is asked
// for the passphrase only when the file's key is encrypted; file stays as
// NHN sent it (the entry in storage holds the key encrypted).
func newEntry(name, generation string, file []byte, fetchedAt time.Time, pass certfile.Passphrase) (*cacheEntry, error) {
	bundle, err := certfile.Parse(file, pass)
	if err != nil {
		return nil, err
	}
	data, err := renderCert(bundle, formatPEM, "")
	if err != nil {
		return nil, err
	}
	e := &cacheEntry{name: name, generation: generation, file: file, bundle: bundle, fetchedAt: fetchedAt, data: data}
	e.notes = bundle.Warnings()
	return e, nil
}

func (e *cacheEntry) touch() { e.lastUsed.Store(time.Now().UnixNano()) }

// fresh reports whether e may be served without asking NHN: younger than
// ttl and its leaf not expired.
func (e *cacheEntry) fresh(now time.Time, ttl time.Duration) bool {
	return now.Before(e.fetchedAt.Add(ttl)) && e.usable(now)
}

// usable reports whether e may be served at all, as a stale copy when NHN
// fails: its leaf has not expired.
func (e *cacheEntry) usable(now time.Time) bool {
	return now.Before(e.bundle.Leaf.NotAfter)
}

// warnings are the warnings a served entry always carries.
func (e *cacheEntry) warnings(now time.Time) []string {
	w := slices.Clone(e.notes)
	if !e.usable(now) {
		w = append(w, fmt.Sprintf("the certificate expired at %s (NHN still serves this file)", e.bundle.Leaf.NotAfter.UTC().Format(time.RFC3339)))
	}
	return w
}
