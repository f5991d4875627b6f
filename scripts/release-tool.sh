#!/usr/bin/env bash
# Builds the release tool (scripts/release/, a module of its own) and
# prints its path: bin/release-tool, rebuilt when its sources change (go
# build is a no-op otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/bin/release-tool"
(cd scripts/release && GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -o "$out" .)
echo "$out"
