#!/usr/bin/env bash
# Prints the path of a vault binary of the pinned version, building it once
# from the Go module proxy through a throwaway wrapper module if needed.
# Progress goes to stderr; the path is the only thing on stdout.
set -euo pipefail

VAULT_VERSION="${VAULT_VERSION:-1.21.0}"
VAULT_SDK_VERSION="${VAULT_SDK_VERSION:-0.20.0}"
CACHE_DIR="${NHNCERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nhncert}"
OUT="$CACHE_DIR/vault-$VAULT_VERSION/vault"

log() { echo "vault.sh: $*" >&2; }

version_of() { "$1" version 2>/dev/null | head -n1 | awk '{sub(/,$/, "", $2); print $2}'; }

if [ -x "$OUT" ] && [ "$(version_of "$OUT")" = "v$VAULT_VERSION" ]; then
  echo "$OUT"; exit 0
fi
if command -v vault >/dev/null 2>&1 && [ "$(version_of "$(command -v vault)")" = "v$VAULT_VERSION" ]; then
  command -v vault; exit 0
fi
# NHNCERT_CHECK_ONLY=1: say whether it is there, build nothing (.ci/run).
[ -z "${NHNCERT_CHECK_ONLY:-}" ] || exit 3

log "no vault v$VAULT_VERSION found; building it from the Go module proxy into $OUT"
log "this takes 10-25 minutes and ~4 GB of module cache the first time; later calls reuse it"

# One build at a time, even when several make targets ask at once.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/vault-$VAULT_VERSION.lock"
flock 9
if [ -x "$OUT" ] && [ "$(version_of "$OUT")" = "v$VAULT_VERSION" ]; then
  echo "$OUT"; exit 0
fi

WORK="$CACHE_DIR/vaultbuild-$VAULT_VERSION"
mkdir -p "$WORK"
cd "$WORK"
cat > go.mod <<MOD
module vaultbuild

go 1.25

require github.com/hashicorp/vault v$VAULT_VERSION

replace github.com/hashicorp/vault/sdk => github.com/hashicorp/vault/sdk v$VAULT_SDK_VERSION
MOD
cat > tools.go <<'SRC'
//go:build tools

package vaultbuild

import _ "github.com/hashicorp/vault"
SRC

start=$(date +%s)
log "step 1/2: downloading modules (go get github.com/hashicorp/vault@v$VAULT_VERSION)"
if ! GOFLAGS=-mod=mod go get "github.com/hashicorp/vault@v$VAULT_VERSION" >&2; then
  log "ERROR: downloading Vault v$VAULT_VERSION failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
  exit 1
fi
log "step 2/2: compiling vault (downloads took $(( $(date +%s) - start ))s; compile takes 7-19 minutes on 2 cores)"
tmp="$OUT.tmp.$$"
mkdir -p "$(dirname "$OUT")"
if ! GOFLAGS=-mod=mod go build -trimpath -o "$tmp" github.com/hashicorp/vault >&2; then
  rm -f "$tmp"
  log "ERROR: compiling Vault v$VAULT_VERSION failed; see the compiler output above"
  exit 1
fi
mv "$tmp" "$OUT"
log "built $("$OUT" version | head -n1) in $(( $(date +%s) - start ))s"
echo "$OUT"
