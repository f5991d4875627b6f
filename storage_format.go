package nhncert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/hashicorp/vault/sdk/logical"
)

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
