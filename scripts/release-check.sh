#!/usr/bin/env bash
# The release smoke of `make test` (make release-check):
#   1. the release tool's vet, staticcheck and tests; the license check of
#      every module compiled into the plugin;
#   2. actionlint (pinned) on .github/workflows, and that it catches a
#      broken workflow;
#   3. the release built twice: A from this tree (linux/amd64 and
#      linux/arm64, for the image; SHA256SUMS signed with a throwaway key),
#      B from a copy of the tree at another path with an empty GOCACHE
#      (linux/amd64): every file B made must be byte-identical to A's;
#   4. the real-Vault release tests (integration/release_test.go,
#      integration/upgrade_test.go): sha256sum -c and gpg --verify, the
#      zip's binary registered by its sha256 and read from, the image
#      opened with skopeo (Debian's package, installed by name when
#      missing), and the upgrade from the release CHANGELOG.md names.
# The full cross-build (five platforms) is `make release`'s.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
VERSION="${RELEASE_CHECK_VERSION:-v0.2.0-dev}"
start=$SECONDS
step() { echo "== release-check: $* (at $((SECONDS - start))s)"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nhncert-release-check.XXXXXX")
cleanup() {
  # The copy's module cache entries are read-only; its GOCACHE is not.
  chmod -R u+w "$tmp" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

step "release tool: vet, staticcheck, tests"
(cd scripts/release && go vet ./... && ../staticcheck.sh ./... && go test -count=1 ./...)
tool=$(scripts/release-tool.sh)

step "licenses of the modules compiled into the plugin (every release platform)"
"$tool" licenses ./cmd/vault-plugin-secrets-nhncert

step "workflows: actionlint"
actionlint=$(scripts/release-tools.sh actionlint)
for f in .github/workflows/ci.yml .github/workflows/release.yml; do
  [ -f "$f" ] || { echo "release-check: $f is missing" >&2; exit 1; }
done
grep -q 'run: make test' .github/workflows/ci.yml || { echo "release-check: ci.yml does not run make test" >&2; exit 1; }
grep -q 'make release VERSION=' .github/workflows/release.yml || { echo "release-check: release.yml does not run make release" >&2; exit 1; }
"$actionlint" -version | head -1
"$actionlint" .github/workflows/*.yml
mkdir -p "$tmp/broken"
printf 'on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo "${{ github.no_such_context }}"\n' >"$tmp/broken/bad.yml"
if "$actionlint" "$tmp/broken/bad.yml" >/dev/null 2>&1; then
  echo "release-check: actionlint accepted a broken workflow" >&2
  exit 1
fi

step "a throwaway signing key"
export GNUPGHOME="$tmp/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-generate-key "nhncert release-check <release-check@nhncert.invalid>" ed25519 sign 1d
epoch=$(git log -1 --format=%ct)

step "release A: this tree, linux/amd64 + linux/arm64, signed"
SOURCE_DATE_EPOCH=$epoch DIST="$tmp/a" RELEASE_PLATFORMS="linux/amd64 linux/arm64" \
  RELEASE_GPG_KEY=release-check@nhncert.invalid scripts/release.sh "$VERSION"

step "release B: a copy at another path, empty GOCACHE, linux/amd64"
mkdir -p "$tmp/elsewhere/nhncert"
git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$tmp/elsewhere/nhncert"
b_start=$SECONDS
(cd "$tmp/elsewhere/nhncert" && GOCACHE="$tmp/gocache" SOURCE_DATE_EPOCH=$epoch DIST="$tmp/b" \
  RELEASE_PLATFORMS="linux/amd64" scripts/release.sh "$VERSION" >/dev/null)
echo "release B took $((SECONDS - b_start))s with an empty GOCACHE"
sums=vault-plugin-secrets-nhncert_${VERSION#v}_SHA256SUMS
echo "A ($root):"; cat "$tmp/a/$sums"
echo "B ($tmp/elsewhere/nhncert, GOCACHE empty):"; cat "$tmp/b/$sums"
# B built one platform of A's two: each of its lines must be A's.
missing=$(grep -vxF -f "$tmp/a/$sums" "$tmp/b/$sums" || true)
if [ -n "$missing" ]; then
  echo "release-check: not reproducible: B's SHA256SUMS has lines A's has not:" >&2
  echo "$missing" >&2
  exit 1
fi
for f in "$tmp"/b/*; do
  case $f in *_SHA256SUMS) continue ;; esac # B's lists one platform of A's two
  cmp "$f" "$tmp/a/$(basename "$f")"
done
echo "release-check: B's $(($(wc -l <"$tmp/b/$sums"))) files are byte-identical to A's"

step "skopeo"
if ! command -v skopeo >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo >/dev/null
  fi
fi
skopeo --version

step "the previous release (CHANGELOG.md), built from its commit"
read -r prev_version prev_bin < <(scripts/release-prev.sh)

step "real-Vault release tests"
[ -x bin/vault-plugin-secrets-nhncert ] && [ -x bin/nhncert-emulator ] || make --no-print-directory build
set -o pipefail
VAULT_BIN=$(scripts/vault.sh) \
NHNCERT_PLUGIN_BIN="$root/bin/vault-plugin-secrets-nhncert" NHNCERT_EMULATOR_BIN="$root/bin/nhncert-emulator" \
NHNCERT_RELEASE_DIST="$tmp/a" NHNCERT_RELEASE_VERSION="$VERSION" NHNCERT_RELEASE_GNUPGHOME="$GNUPGHOME" \
NHNCERT_PREV_PLUGIN_BIN="$prev_bin" NHNCERT_PREV_VERSION="$prev_version" \
  go test -count=1 -timeout 20m -v -run '^(TestReleaseSums|TestReleaseZip|TestReleaseImage|TestUpgrade)$' ./integration/ 2>&1 |
  tee "$tmp/tests.log" | SUMMARY_LABEL=release-check scripts/test-summary.sh
# Here a skipped test is one not checked: each must run.
if grep -E -e '--- SKIP' "$tmp/tests.log"; then
  echo "release-check: a release test was skipped" >&2
  exit 1
fi
step "done"
