#!/usr/bin/env bash
# Prints, for each part `make test` builds or fetches once into the cache
# (NHNCERT_CACHE, default ~/.cache/nhncert), whether it is there already or
# will be made now, and how full Go's module and build caches are: the
# first lines of a CI log then say whether the run proves a fresh install.
# Builds nothing.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
export NHNCERT_CHECK_ONLY=1
report() { # name, command...
  local name=$1; shift
  local out
  if out=$("$@" 2>/dev/null); then
    printf 'parts: %-16s cached   %s\n' "$name" "$out"
  else
    printf 'parts: %-16s MISSING  (built or fetched by this run)\n' "$name"
  fi
}
report vault "$HERE/vault.sh"
for p in etcd kube-apiserver vso eso; do report "$p" "$HERE/kube.sh" "$p"; done
report prometheus "$HERE/prometheus.sh"
report staticcheck "$HERE/staticcheck.sh"
for t in "$HERE"/tool-*.sh; do
  [ -e "$t" ] || continue
  n=$(basename "$t" .sh); report "${n#tool-}" "$t"
done
size() { if [ -d "$1" ]; then du -sh "$1" 2>/dev/null | cut -f1; else echo empty; fi; }
echo "parts: go module cache $(go env GOMODCACHE): $(size "$(go env GOMODCACHE)")"
echo "parts: go build cache  $(go env GOCACHE): $(size "$(go env GOCACHE)")"
