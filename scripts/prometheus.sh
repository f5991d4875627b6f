#!/usr/bin/env bash
# Prints the directory holding the pinned prometheus and promtool binaries,
# fetching them once from the Debian package (what `apt-get download` serves
# on this image) into the cache. Progress goes to stderr; the directory is
# the only thing on stdout.
set -euo pipefail

PROM_DEB_VERSION="${PROM_DEB_VERSION:-2.42.0+ds-5+b6}"
CACHE_DIR="${NHNCERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nhncert}"
OUT="$CACHE_DIR/prometheus-$PROM_DEB_VERSION"

log() { echo "prometheus.sh: $*" >&2; }

if [ -x "$OUT/prometheus" ] && [ -x "$OUT/promtool" ]; then
  echo "$OUT"; exit 0
fi
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/prometheus.lock"
flock 9
if [ -x "$OUT/prometheus" ] && [ -x "$OUT/promtool" ]; then
  echo "$OUT"; exit 0
fi
command -v apt-get >/dev/null || { log "ERROR: no apt-get: cannot fetch Debian's prometheus $PROM_DEB_VERSION"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "fetching Debian's prometheus $PROM_DEB_VERSION (about 20 MB) into $OUT"
if ! (cd "$work" && apt-get download "prometheus=$PROM_DEB_VERSION" >&2 2>/dev/null); then
  log "ERROR: apt-get download prometheus=$PROM_DEB_VERSION failed (is the package registry reachable? try apt-get update)"
  exit 1
fi
dpkg -x "$work"/prometheus_*.deb "$work/x"
mkdir -p "$OUT.tmp"
cp "$work/x/usr/bin/prometheus" "$work/x/usr/bin/promtool" "$OUT.tmp/"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
"$OUT/prometheus" --version 2>&1 | head -n1 >&2
echo "$OUT"
