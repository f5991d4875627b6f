#!/usr/bin/env bash
# Builds the newest release CHANGELOG.md names (its version and its
# `Commit:` line) from that commit, in a git worktree, the way the release
# was built (CGO off, -trimpath, the version stamped), once: the binary is
# cached in the nhncert cache by version and commit. Prints
# "VERSION PATH". The upgrade test (integration/upgrade_test.go) upgrades
# from it.
set -euo pipefail
cd "$(dirname "$0")/.."

read -r version commit < <(awk '
  /^## \[[0-9]+\.[0-9]+\.[0-9]+[^]]*\]/ && !v { v = $2; gsub(/[][]/, "", v) }
  v && /^Commit: / { c = $2; gsub(/`/, "", c); print "v" v, c; exit }
' CHANGELOG.md)
if [ -z "${commit:-}" ]; then
  echo "release-prev.sh: CHANGELOG.md names no released version with a Commit: line" >&2
  exit 1
fi
CACHE_DIR="${NHNCERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nhncert}"
out="$CACHE_DIR/releases/$version-$commit/vault-plugin-secrets-nhncert"
if [ ! -x "$out" ]; then
  if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "release-prev.sh: commit $commit ($version) is not in this clone: fetch the history (git fetch --unshallow)" >&2
    exit 1
  fi
  echo "release-prev.sh: building $version from $commit (git worktree) into $out" >&2
  wt=$(mktemp -d)
  git worktree add --quiet --detach "$wt/src" "$commit"
  trap 'git worktree remove --force "$wt/src"; rm -rf "$wt"' EXIT
  mkdir -p "$(dirname "$out")"
  (cd "$wt/src" && env -u GOAMD64 GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -buildvcs=false \
    -ldflags "-buildid= -X github.com/nhncert/vault-plugin-secrets-nhncert.Version=$version" \
    -o "$out.tmp" ./cmd/vault-plugin-secrets-nhncert)
  mv "$out.tmp" "$out"
fi
echo "$version $out"
