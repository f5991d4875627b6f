#!/usr/bin/env bash
# make compat: builds (cached, by scripts/vault.sh) the newest patch of each
# Vault line the Go module proxy serves and that compiles, and runs the whole
# real-Vault integration suite against each; prints a table of the results.
# CI keeps its v1.21.0 pin (make test); this is run by hand, and the README's
# table of measured versions comes from it. scripts/vault-versions lists the
# versions measured, which `make demo` accepts from PATH.
set -uo pipefail
cd "$(dirname "$0")/.."

# version:sdk, the SDK being the one the release's go.mod requires (its
# in-repository ./sdk replace does not apply to a module build).
COMPAT_VERSIONS="${COMPAT_VERSIONS:-1.19.5:0.15.2 1.20.4:0.18.0 1.21.0:0.20.0}"
RUN="${COMPAT_RUN:-.}"
out_dir="${COMPAT_OUT:-compat-results}"
mkdir -p "$out_dir"

make -s build || exit 1
prom_dir=$(scripts/prometheus.sh) || prom_dir=""
rows=()
status=0
for pair in $COMPAT_VERSIONS; do
  v=${pair%%:*}; sdk=${pair##*:}
  echo "compat: Vault v$v (sdk v$sdk)" >&2
  start=$(date +%s)
  if ! bin=$(VAULT_VERSION="$v" VAULT_SDK_VERSION="$sdk" scripts/vault.sh); then
    rows+=("| v$v | does not build from the module proxy (sdk v$sdk) | | |")
    status=1
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
  [ "$rc" = 0 ] || status=1
  rows+=("| v$v | $pass passed, $fail failed, $skip skipped${failed:+ (failed: $failed)} | ${took}s | build ${built}s (cached: 0s) |")
done
echo
echo "| Vault | integration suite (top-level tests) | run | |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ "$status" = 0 ] && [ "$RUN" = . ]; then
  # Every version passed the whole suite: make demo may use them from PATH.
  for pair in $COMPAT_VERSIONS; do echo "${pair%%:*}"; done > scripts/vault-versions
fi
exit $status
