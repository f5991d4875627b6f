#!/usr/bin/env bash
# Runs the pinned staticcheck on the packages given (default ./...),
# installing it once from the Go module proxy into the nhncert cache.
# `//lint:ignore CHECK reason` on the line before silences one finding,
# with the reason.
set -euo pipefail

STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}" # honnef.co/go/tools
CACHE_DIR="${NHNCERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nhncert}"
BIN_DIR="$CACHE_DIR/tools/staticcheck-$STATICCHECK_VERSION"
BIN="$BIN_DIR/staticcheck"

if [ ! -x "$BIN" ] || ! "$BIN" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
  [ -z "${NHNCERT_CHECK_ONLY:-}" ] || exit 3
  echo "staticcheck.sh: installing staticcheck $STATICCHECK_VERSION into $BIN_DIR" >&2
  mkdir -p "$BIN_DIR"
  GOBIN="$BIN_DIR" GOFLAGS=-mod=mod go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
[ -z "${NHNCERT_CHECK_ONLY:-}" ] || { echo "$BIN"; exit 0; }
[ $# -gt 0 ] || set -- ./...
"$BIN" "$@"
echo "staticcheck $STATICCHECK_VERSION: no findings in $*"
