package nhncert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// What this engine keeps in Vault's storage, all of it seal-wrapped (see
// PathsSpecial in backend.go): the config, which holds the secret access
// key, and one entry per downloaded certificate file, which holds a private
// key.
const (
	// configPath is the mount's one config entry (nhnConfig).
	configPath = "config"
	// cacheStoragePrefix holds one storedEntry per certificate, under
	// storageKey(name).
	cacheStoragePrefix = "cache/"
)

// storageKey is where a certificate's cache entry is stored. Names are
// hashed so that any name NHN accepts makes one fixed-length, path-safe key.
func storageKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return cacheStoragePrefix + hex.EncodeToString(sum[:])
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
	var cfg nhnConfig
	if err := entry.DecodeJSON(&cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	return &cfg, nil
}

func writeConfig(ctx context.Context, s logical.Storage, cfg *nhnConfig) error {
	entry, err := logical.StorageEntryJSON(configPath, cfg)
	if err != nil {
		return err
	}
	entry.SealWrap = true
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
	var se storedEntry
	if err := raw.DecodeJSON(&se); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadStoredEntry, err)
	}
	return &se, nil
}

func writeStoredEntry(ctx context.Context, s logical.Storage, se *storedEntry) error {
	entry, err := logical.StorageEntryJSON(storageKey(se.Name), se)
	if err != nil {
		return err
	}
	entry.SealWrap = true
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
