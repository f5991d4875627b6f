#!/usr/bin/env bash
# make compat: builds (cached, by scripts/vault.sh) the newest patch of each
# Vault line the Go module proxy serves and that compiles, and runs the whole
# real-Vault integration suite against each; prints a table of the results.
# CI keeps its v1.21.0 pin (make test); this is run by hand, and docs/vault-versions.md's
# table of measured versions comes from it. scripts/vault-versions lists the
# versions measured, which `make demo` accepts from PATH.
set -uo pipefail
cd "$(dirname "$0")/.."

# version:sdk. A module build cannot use a release's in-repository ./sdk, so
# each release is built against a published SDK: the oldest that has what
# it uses. v1.19.5 builds with sdk v0.17.0 (its go.mod says v0.15.2, which
# lacks consts.PluginTier). No published SDK builds any v1.20.x: they need
# PluginRunner.Download (sdk >= v0.19.0) and the two-argument
# GetCloudSQLAuthOptions and KeyType.IsPQC (sdk <= v0.18.0); the proxy does
# not serve the SDK of their commits. The line is tried, and reported so.
COMPAT_VERSIONS="${COMPAT_VERSIONS:-1.19.5:0.17.0 1.20.4:0.19.0 1.21.0:0.20.0}"
CACHE_DIR="${NHNCERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nhncert}"
RUN="${COMPAT_RUN:-.}"
out_dir="${COMPAT_OUT:-compat-results}"
mkdir -p "$out_dir"

make -s build || exit 1
prom_dir=$(scripts/prometheus.sh) || prom_dir=""
rows=()
passed=()
status=0
for pair in $COMPAT_VERSIONS; do
  v=${pair%%:*}; sdk=${pair##*:}
  echo "compat: Vault v$v (sdk v$sdk)" >&2
  start=$(date +%s)
  failed_marker="$CACHE_DIR/vault-$v-sdk-$sdk.failed"
  if [ -f "$failed_marker" ]; then
    echo "compat: v$v did not build with sdk v$sdk before ($failed_marker); not tried again" >&2
    rows+=("| v$v | does not build from the module proxy (sdk v$sdk; delete $failed_marker to retry) | | |")
    continue
  fi
  if ! bin=$(VAULT_VERSION="$v" VAULT_SDK_VERSION="$sdk" scripts/vault.sh); then
    touch "$failed_marker"
    rows+=("| v$v | does not build from the module proxy (sdk v$sdk) | | |")
    continue
  fi
  built=$(( $(date +%s) - start ))
  log="$out_dir/vault-$v.log"
  start=$(date +%s)
  VAULT_BIN="$bin" NHNCERT_VAULT_VERSION="v$v" NHNCERT_PROMETHEUS_DIR="$prom_dir" \
    NHNCERT_PLUGIN_BIN="$PWD/bin/vault-plugin-secrets-nhncert" NHNCERT_EMULATOR_BIN="$PWD/bin/nhncert-emulator" \
    go test -count=1 -timeout 30m -v -run "$RUN" ./integration/ > "$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  pass=$(grep -c '^--- PASS' "$log"); fail=$(grep -c '^--- FAIL' "$log"); skip=$(grep -c '^--- SKIP' "$log")
  failed=$(grep '^--- FAIL' "$log" | awk '{print $3}' | tr '\n' ' ')
  if [ "$rc" = 0 ]; then passed+=("$v"); else status=1; fi
  rows+=("| v$v | $pass passed, $fail failed, $skip skipped${failed:+ (failed: $failed)} | ${took}s | ${built}s |")
done
echo
echo "| Vault | integration suite (top-level tests) | run | build (0: cached) |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ "$RUN" = . ]; then
  # The versions that passed the whole suite: make demo may use them from
  # PATH.
  printf '%s\n' "${passed[@]}" > scripts/vault-versions
fi
exit $status
