#!/usr/bin/env bash
# Prints the path of a pinned release tool, installing it once from the Go
# module proxy into the nhncert cache (as scripts/staticcheck.sh does):
#   scripts/release-tools.sh cyclonedx-gomod | actionlint
# The pins live here and nowhere else; bump one by editing its line.
set -euo pipefail

CYCLONEDX_GOMOD_VERSION="${CYCLONEDX_GOMOD_VERSION:-v1.10.0}" # github.com/CycloneDX/cyclonedx-gomod
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"           # github.com/rhysd/actionlint

CACHE_DIR="${NHNCERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nhncert}"

case "${1:-}" in
  cyclonedx-gomod) version=$CYCLONEDX_GOMOD_VERSION pkg=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod ;;
  actionlint) version=$ACTIONLINT_VERSION pkg=github.com/rhysd/actionlint/cmd/actionlint ;;
  *) echo "usage: $0 cyclonedx-gomod|actionlint" >&2; exit 2 ;;
esac
name=$1
bin_dir="$CACHE_DIR/tools/$name-$version"
bin="$bin_dir/$name"
if [ ! -x "$bin" ]; then
  echo "release-tools.sh: installing $name $version into $bin_dir" >&2
  mkdir -p "$bin_dir"
  # Outside any module, so that the tool's own go.mod decides its
  # dependencies; installed to a temporary name first so that an
  # interrupted install leaves nothing that looks installed.
  tmp=$(mktemp -d "$bin_dir/.install.XXXXXX")
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod GOWORK=off go install -trimpath "$pkg@$version")
  mv "$tmp/$name" "$bin"
  rm -rf "$tmp"
fi
echo "$bin"
