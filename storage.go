package nhncert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
)

// What this engine keeps in Vault's storage, all of it seal-wrapped (see
// PathsSpecial in backend.go): the config, which holds the secret access
// key, one entry per downloaded certificate file, which holds a private
// key, and one entry per passphrase an operator wrote for an encrypted key.
const (
	// configPath is the mount's one config entry (nhnConfig).
	configPath = "config"
	// cacheStoragePrefix holds one storedEntry per certificate, under
	// storageKey(name).
	cacheStoragePrefix = "cache/"
	// passphraseStoragePrefix holds one passphraseEntry per certificate
	// whose key NHN holds encrypted, under passphraseKey(name).
	passphraseStoragePrefix = "passphrase/"
	// refreshClaimPath is written by the background refresh before each
	// run's first call to NHN (refresh.go, refreshClaim); it holds no secret.
	refreshClaimPath = "refresh/claim"
)

// storageKey is where a certificate's cache entry is stored. Names are
// hashed so that any name NHN accepts makes one fixed-length, path-safe key.
func storageKey(name string) string {
	return cacheStoragePrefix + nameHash(name)
}

// passphraseKey is where a certificate's passphrase is stored, hashed for
// the same reason.
func passphraseKey(name string) string {
	return passphraseStoragePrefix + nameHash(name)
}

func nameHash(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// readConfig returns the stored config, or nil when there is none.
func readConfig(ctx context.Context, s logical.Storage) (*nhnConfig, error) {
	entry, err := s.Get(ctx, configPath)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	if err := checkFormat(entry); err != nil {
		return nil, err
	}
	var cfg nhnConfig
	if err := entry.DecodeJSON(&cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	return &cfg, nil
}

func writeConfig(ctx context.Context, s logical.Storage, cfg *nhnConfig) error {
	entry, err := formattedEntry(configPath, cfg)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

func deleteConfig(ctx context.Context, s logical.Storage) error {
	return s.Delete(ctx, configPath)
}

// storedEntry is a cache entry as written to storage: the file as NHN sent
// it (parsed again on load) and what is known of where it came from.
type storedEntry struct {
	Name       string    `json:"name"`
	Generation string    `json:"generation"`
	FetchedAt  time.Time `json:"fetched_at"`
	File       []byte    `json:"file"`
	// Listed is what NHN's list said of the certificate when the file was
	// downloaded (see cacheEntry.listedAtDownload).
	Listed *certInfo `json:"listed,omitempty"`
	// NotAfter is the leaf's, so that the expiry metric needs no parse of
	// entries only in storage; absent from entries of earlier versions.
	NotAfter time.Time `json:"not_after,omitzero"`
	// DNSNames are the leaf's, so that hosts/<hostname> knows which hosts
	// a stored copy covers without parsing it; null in entries of earlier
	// versions, [] for a leaf without any.
	DNSNames []string `json:"dns_names"`
}

// readStoredEntry returns name's stored entry, or nil when there is none.
// A stored entry that cannot be decoded is reported as errBadStoredEntry.
func readStoredEntry(ctx context.Context, s logical.Storage, name string) (*storedEntry, error) {
	return readStoredEntryAt(ctx, s, storageKey(name))
}

// readStoredEntryAt is readStoredEntry by storage key (cacheIndex's scan).
func readStoredEntryAt(ctx context.Context, s logical.Storage, key string) (*storedEntry, error) {
	raw, err := s.Get(ctx, key)
	if err != nil || raw == nil {
		return nil, err
	}
	if err := checkFormat(raw); err != nil {
		return nil, err
	}
	var se storedEntry
	if err := raw.DecodeJSON(&se); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadStoredEntry, err)
	}
	return &se, nil
}

func writeStoredEntry(ctx context.Context, s logical.Storage, se *storedEntry) error {
	entry, err := formattedEntry(storageKey(se.Name), se)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

func deleteStoredEntry(ctx context.Context, s logical.Storage, name string) error {
	return s.Delete(ctx, storageKey(name))
}

// listStoredEntryKeys returns the storage keys (below cacheStoragePrefix)
// of every stored cache entry.
func listStoredEntryKeys(ctx context.Context, s logical.Storage) ([]string, error) {
	return s.List(ctx, cacheStoragePrefix)
}

// passphraseEntry is the passphrase of one certificate's encrypted key, as
// an operator wrote it to passphrases/<name>. Only path_passphrases.go and
// the cache's passphrase source read it; no response carries Passphrase.
type passphraseEntry struct {
	Name       string    `json:"name"`
	Passphrase string    `json:"passphrase"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// readPassphrase returns name's passphrase entry, or nil when none is set.
func readPassphrase(ctx context.Context, s logical.Storage, name string) (*passphraseEntry, error) {
	raw, err := s.Get(ctx, passphraseKey(name))
	if err != nil || raw == nil {
		return nil, err
	}
	if err := checkFormat(raw); err != nil {
		return nil, err
	}
	var pe passphraseEntry
	if err := raw.DecodeJSON(&pe); err != nil {
		// The decoder's message could quote the entry: it is not passed on.
		return nil, fmt.Errorf("the passphrase entry of %s cannot be decoded", safetext.Quote(name))
	}
	if pe.Name != name {
		return nil, nil // a hash collision: not this name's
	}
	return &pe, nil
}

func writePassphrase(ctx context.Context, s logical.Storage, pe *passphraseEntry) error {
	entry, err := formattedEntry(passphraseKey(pe.Name), pe)
	if err != nil {
		return errors.New("cannot encode the passphrase entry")
	}
	return s.Put(ctx, entry)
}

func deletePassphrase(ctx context.Context, s logical.Storage, name string) error {
	return s.Delete(ctx, passphraseKey(name))
}

// listPassphraseNames returns the names that have a passphrase, sorted:
// the keys are hashes, so each entry is read for its name.
func listPassphraseNames(ctx context.Context, s logical.Storage) ([]string, error) {
	keys, err := s.List(ctx, passphraseStoragePrefix)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		raw, err := s.Get(ctx, passphraseStoragePrefix+k)
		if err != nil {
			return nil, err
		}
		if raw == nil {
			continue // deleted meanwhile
		}
		if err := checkFormat(raw); err != nil {
			return nil, err
		}
		var pe passphraseEntry
		if err := raw.DecodeJSON(&pe); err != nil {
			continue
		}
		names = append(names, pe.Name)
	}
	slices.Sort(names)
	return names, nil
}

// storageFormat is the format of every entry this build writes, and the
// newest it reads. Each entry records it ("format", beside the entry's own
// fields); entries without it were written by v0.1.0 and are format 1.
// Raise it when an entry's meaning changes so that an older build would
// misread it, and say so in CHANGELOG.md: an older build then refuses the
// entry (errNewerStorageFormat) instead of serving or overwriting it.
const storageFormat = 1

// errNewerStorageFormat is an entry written by a newer build, in a format
// this one does not know: it is neither served nor overwritten.
var errNewerStorageFormat = errors.New("storage entry of a newer format")

type newerFormatError struct {
	key    string
	format int
}

func (e *newerFormatError) Error() string {
	return fmt.Sprintf("the storage entry %q has format %d, newer than format %d, the newest this build of nhncert (%s) knows: a newer version wrote it; run that version again (downgrading across a storage format change is not supported, see CHANGELOG.md)",
		e.key, e.format, storageFormat, Version)
}

func (e *newerFormatError) Unwrap() error { return errNewerStorageFormat }

// formattedEntry is logical.StorageEntryJSON with the storage format
// recorded, seal-wrapped: v must encode as a JSON object without a
// "format" field of its own.
func formattedEntry(key string, v any) (*logical.StorageEntry, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("the storage entry %q does not encode as a JSON object", key)
	}
	out := append([]byte(`{"format":`), strconv.Itoa(storageFormat)...)
	if !bytes.Equal(b, []byte("{}")) {
		out = append(out, ',')
	}
	out = append(out, b[1:]...)
	return &logical.StorageEntry{Key: key, Value: out, SealWrap: true}, nil
}

// checkFormat returns a *newerFormatError when raw was written in a
// format newer than this build knows, and nil for formats it reads (a
// missing format is format 1). An entry that is not JSON passes: decoding
// it reports that.
func checkFormat(raw *logical.StorageEntry) error {
	var probe struct {
		Format int `json:"format"`
	}
	if json.Unmarshal(raw.Value, &probe) == nil && probe.Format > storageFormat {
		return &newerFormatError{key: raw.Key, format: probe.Format}
	}
	return nil
}
