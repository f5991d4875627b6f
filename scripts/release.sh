#!/usr/bin/env bash
# Builds the release artifacts of one version into DIST (default dist/):
#
#   vault-plugin-secrets-nhncert_X.Y.Z_<os>_<arch>.zip   the binary at the top level (.exe on Windows)
#   vault-plugin-secrets-nhncert_X.Y.Z_<os>_<arch>.cdx.json   CycloneDX SBOM of that binary
#   vault-plugin-secrets-nhncert_X.Y.Z_oci.tar          OCI image layout: multi-arch index (linux/amd64, linux/arm64),
#                                                       when both are among the platforms
#   vault-plugin-secrets-nhncert_X.Y.Z_SHA256SUMS       sha256sum -c format, every file above
#   vault-plugin-secrets-nhncert_X.Y.Z_SHA256SUMS.sig   detached GPG signature, when RELEASE_GPG_KEY is set
#
# and prints the sha256 of each binary (what `vault plugin register
# -sha256=` wants). Usage: scripts/release.sh vX.Y.Z
#
# Environment:
#   DIST               where to write (default dist); emptied first
#   RELEASE_PLATFORMS  os/arch list (default: the five release platforms)
#   RELEASE_GPG_KEY    gpg key id or e-mail to sign SHA256SUMS with
#   RELEASE_IMAGE      registry/repository to push the image to as :vX.Y.Z (not pushed when empty)
#   SOURCE_DATE_EPOCH  the time every artifact records (default: the HEAD commit's time)
#
# Reproducible: the same commit and Go toolchain make the same bytes, in
# any directory and with any GOCACHE: CGO off, -trimpath, -buildvcs=false,
# an empty build ID, the version stamped with -ldflags -X, and zips and
# image tars with fixed order, modes, owners and times (the commit's).
set -euo pipefail

cd "$(dirname "$0")/.."
VERSION="${1:-${VERSION:-}}"
if ! [[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "release.sh: VERSION must be vX.Y.Z (semver with a v), not '$VERSION'" >&2
  exit 2
fi
PLUGIN=vault-plugin-secrets-nhncert
MODULE=github.com/nhncert/vault-plugin-secrets-nhncert
DIST="${DIST:-dist}"
PLATFORMS="${RELEASE_PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
fi
export SOURCE_DATE_EPOCH
prefix="${PLUGIN}_${VERSION#v}"

tool=$(scripts/release-tool.sh)
cyclonedx=$(scripts/release-tools.sh cyclonedx-gomod)

rm -rf "$DIST"
mkdir -p "$DIST"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "release.sh: $PLUGIN $VERSION, $(go version | cut -d' ' -f3), commit time $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ), into $DIST/" >&2
declare -A binsum
oci_args=()
for plat in $PLATFORMS; do
  goos=${plat%/*} goarch=${plat#*/}
  exe=$PLUGIN
  [ "$goos" = windows ] && exe=$PLUGIN.exe
  out="$work/${goos}_${goarch}/$exe"
  # Only what is named here reaches the build: a GOAMD64 or GOFLAGS of the
  # caller's environment would change the bytes.
  env -u GOAMD64 -u GOARM64 -u GOEXPERIMENT GOFLAGS=-mod=readonly CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" \
    go build -trimpath -buildvcs=false -ldflags "-buildid= -X $MODULE.Version=$VERSION" -o "$out" "./cmd/$PLUGIN"
  "$tool" zip -o "$DIST/${prefix}_${goos}_${goarch}.zip" -mtime "$SOURCE_DATE_EPOCH" -name "$exe" "$out"
  # The SBOM is read from the binary's own build information: exactly the
  # modules linked into it, at the versions linked.
  "$cyclonedx" bin -json -std -noserial -notimestamp -version "$VERSION" \
    -output "$DIST/${prefix}_${goos}_${goarch}.cdx.json" "$out" 2>"$work/cyclonedx.log" ||
    { cat "$work/cyclonedx.log" >&2; exit 1; }
  binsum[$plat]=$(sha256sum "$out" | cut -d' ' -f1)
  if [ "$goos" = linux ]; then
    oci_args+=("$plat=$out")
  fi
done

# The image is the multi-arch index of both linux platforms: a build of
# fewer platforms (RELEASE_PLATFORMS) makes none rather than another image.
if [ ${#oci_args[@]} -eq 2 ]; then
  push=()
  [ -n "${RELEASE_IMAGE:-}" ] && push=(-push "$RELEASE_IMAGE:$VERSION")
  "$tool" oci -o "$DIST/${prefix}_oci.tar" -mtime "$SOURCE_DATE_EPOCH" -version "$VERSION" -name "$PLUGIN" "${push[@]}" "${oci_args[@]}"
fi

(cd "$DIST" && LC_ALL=C sha256sum -- $(LC_ALL=C ls | grep -E '\.(zip|cdx\.json|tar)$') >"${prefix}_SHA256SUMS")
if [ -n "${RELEASE_GPG_KEY:-}" ]; then
  gpg --batch --yes --local-user "$RELEASE_GPG_KEY" --detach-sign \
    --output "$DIST/${prefix}_SHA256SUMS.sig" "$DIST/${prefix}_SHA256SUMS"
fi

echo "release.sh: $DIST/${prefix}_SHA256SUMS:" >&2
cat "$DIST/${prefix}_SHA256SUMS" >&2
echo "binary sha256 (vault plugin register -sha256=... -version=$VERSION secret $PLUGIN):"
for plat in $PLATFORMS; do
  echo "${binsum[$plat]}  ${plat}"
done
