#!/usr/bin/env bash
# Usage: scripts/kube.sh PART   (PART: etcd, kube-apiserver, vso, eso)
#
# Prints the path of PART's binary at its pinned version, building it once
# from the Go module proxy through its wrapper module in scripts/kube/PART
# (go.mod and go.sum pin every module) if needed. Progress goes to stderr;
# the path is the only thing on stdout. The Kubernetes integration tier
# (integration/kube_*_test.go) runs these four on loopback.
#
#   scripts/kube.sh crds PART   prints the directory of PART's CRDs in the
#                               Go module cache (vso or eso), downloading
#                               the module if needed.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_DIR="${NHNCERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nhncert}"

log() { echo "kube.sh: $*" >&2; }

# PART -> version, Go package of its main, version check, CRD directory.
part_info() {
  case "$1" in
  etcd)
    VERSION=3.6.16; PKG=.; CRDS=
    ;;
  kube-apiserver)
    VERSION=1.37.2; PKG=.; CRDS=
    ;;
  vso)
    VERSION=1.5.0; PKG=github.com/hashicorp/vault-secrets-operator
    MODULE=github.com/hashicorp/vault-secrets-operator; CRDS=config/crd/bases
    ;;
  eso)
    VERSION=0.20.4; PKG=github.com/external-secrets/external-secrets
    MODULE=github.com/external-secrets/external-secrets; CRDS=config/crds/bases
    ;;
  *)
    log "unknown part '$1' (etcd, kube-apiserver, vso, eso)"; exit 2
    ;;
  esac
}

# ldflags per part: kube-apiserver reports its version to kubectl (and to
# the operators' discovery) from these; without them it says v0.0.0.
ldflags() {
  case "$1" in
  kube-apiserver)
    local v=k8s.io/component-base/version
    echo "-X $v.gitVersion=v$VERSION -X $v.gitMajor=${VERSION%%.*} -X $v.gitMinor=$(echo "$VERSION" | cut -d. -f2)"
    ;;
  esac
}

if [ "${1:-}" = crds ]; then
  part_info "${2:-}"
  [ -n "$CRDS" ] || { log "$2 has no CRDs"; exit 2; }
  cd "$HERE/kube/$2"
  dir=$(GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' "$MODULE" 2>/dev/null || true)
  if [ -z "$dir" ] || [ ! -d "$dir/$CRDS" ]; then
    log "downloading $MODULE@v$VERSION for its CRDs"
    go mod download "$MODULE" >&2
    dir=$(GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' "$MODULE")
  fi
  echo "$dir/$CRDS"; exit 0
fi

PART="${1:-}"
part_info "$PART"
OUT="$CACHE_DIR/$PART-$VERSION/$PART"
# The wrapper's go.mod and go.sum decide the build: a cached binary built
# from other ones is rebuilt.
STAMP_WANT=$(cat "$HERE/kube/$PART/go.mod" "$HERE/kube/$PART/go.sum" | sha256sum | cut -d' ' -f1)
fresh() { [ -x "$OUT" ] && [ "$(cat "$OUT.stamp" 2>/dev/null)" = "$STAMP_WANT" ]; }

if fresh; then echo "$OUT"; exit 0; fi
# NHNCERT_CHECK_ONLY=1: say whether it is there, build nothing (.ci/run).
[ -z "${NHNCERT_CHECK_ONLY:-}" ] || exit 3

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/$PART-$VERSION.lock"
flock 9
if fresh; then echo "$OUT"; exit 0; fi

log "no $PART v$VERSION in $OUT; building it from the Go module proxy (scripts/kube/$PART)"
log "cold, on 2 cores: etcd about 1 min, kube-apiserver about 5 min, vso and eso 3-6 min each"
start=$(date +%s)
cd "$HERE/kube/$PART"
if ! GOFLAGS=-mod=readonly go mod download >&2; then
  log "ERROR: downloading the modules of $PART v$VERSION failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
  exit 1
fi
log "compiling $PART (downloads took $(( $(date +%s) - start ))s)"
mkdir -p "$(dirname "$OUT")"
tmp="$OUT.tmp.$$"
if ! GOFLAGS=-mod=readonly go build -buildvcs=false -trimpath -ldflags "$(ldflags "$PART")" -o "$tmp" "$PKG" >&2; then
  rm -f "$tmp"
  log "ERROR: compiling $PART v$VERSION failed; see the compiler output above"
  exit 1
fi
mv "$tmp" "$OUT"
echo "$STAMP_WANT" > "$OUT.stamp"
log "built $PART v$VERSION in $(( $(date +%s) - start ))s"
echo "$OUT"
