#!/usr/bin/env bash
# Prints the directory holding the pinned prometheus and promtool binaries,
# building them once from the Go module proxy through the wrapper module in
# scripts/prometheus/ (go.mod and go.sum pin every module; the version is
# Prometheus's module version: v0.316.0 is Prometheus 3.16.0). Nothing is
# fetched from anywhere but the module proxy, so no archive can drop it.
# Progress goes to stderr; the directory is the only thing on stdout.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_DIR="${NHNCERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nhncert}"
MODVER=$(awk '$1 == "require" && $2 == "github.com/prometheus/prometheus" {print $3}' "$HERE/prometheus/go.mod")
[ -n "$MODVER" ] || { echo "prometheus.sh: no prometheus pin in scripts/prometheus/go.mod" >&2; exit 1; }
OUT="$CACHE_DIR/prometheus-$MODVER"
# A cached build made from other pins is rebuilt.
STAMP_WANT=$(cat "$HERE/prometheus/go.mod" "$HERE/prometheus/go.sum" | sha256sum | cut -d' ' -f1)

log() { echo "prometheus.sh: $*" >&2; }
fresh() {
  [ -x "$OUT/prometheus" ] && [ -x "$OUT/promtool" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$STAMP_WANT" ]
}

if fresh; then echo "$OUT"; exit 0; fi
# NHNCERT_CHECK_ONLY=1: say whether it is there, build nothing (.ci/run).
[ -z "${NHNCERT_CHECK_ONLY:-}" ] || exit 3
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/prometheus.lock"
flock 9
if fresh; then echo "$OUT"; exit 0; fi

log "no Prometheus $MODVER in $OUT; building prometheus and promtool from the Go module proxy (scripts/prometheus)"
log "cold, on 2 cores: about 5-8 minutes; later calls reuse it"
start=$(date +%s)
cd "$HERE/prometheus"
if ! GOFLAGS=-mod=readonly go mod download >&2; then
  log "ERROR: downloading Prometheus $MODVER's modules failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
  exit 1
fi
log "compiling (downloads took $(( $(date +%s) - start ))s)"
tmp="$OUT.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
# The version Prometheus reports (prometheus --version, build_info) comes
# from these; v0.316.0 is 3.16.0.
v=${MODVER#v0.}; v="3.$(( 10#${v%%.*} - 300 )).${v#*.}"
ld="-X github.com/prometheus/common/version.Version=$v"
for p in prometheus promtool; do
  if ! GOFLAGS=-mod=readonly go build -buildvcs=false -trimpath -ldflags "$ld" -o "$tmp/$p" "github.com/prometheus/prometheus/cmd/$p" >&2; then
    log "ERROR: compiling $p ($MODVER) failed; see the compiler output above"
    exit 1
  fi
done
echo "$STAMP_WANT" > "$tmp/stamp"
rm -rf "$OUT" && mv "$tmp" "$OUT"
trap - EXIT
log "built Prometheus $v ($MODVER) in $(( $(date +%s) - start ))s: $("$OUT/prometheus" --version 2>&1 | head -n1)"
echo "$OUT"
