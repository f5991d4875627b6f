package testkit

import (
	"slices"
	"strings"
	"testing"
)

// RequireMergedNames fails t unless names, a merge of listed pages, holds
// each name of want once, nothing else, sorted: what the NHN client's and
// the engine's list fuzzers both check of a merge.
func RequireMergedNames(t testing.TB, names []string, want map[string]bool) {
	t.Helper()
	if len(names) != len(want) {
		t.Fatalf("merged %d names, want %d distinct ones", len(names), len(want))
	}
	for i, n := range names {
		if !want[n] {
			t.Fatalf("merged name %q was not in the input", n)
		}
		if i > 0 && names[i-1] >= n {
			t.Fatalf("names not sorted and unique: %q then %q", names[i-1], n)
		}
	}
	if !slices.IsSortedFunc(names, strings.Compare) {
		t.Fatal("not sorted")
	}
}
