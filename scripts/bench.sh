#!/usr/bin/env bash
# nhncert's benchmark (make bench): a real Vault dev server and the NHN
# emulator on 127.0.0.1, nhncert and the null reference plugin
# (bench/nullplugin, never shipped) registered by sha256, then
#
#   1. bench/load: cached reads (nhncert vs null plugin vs KV-v1), 200
#      concurrent uncached reads, a cold LIST over 10,000 certificates, with
#      a perf profile of both plugin processes and of Vault when perf works;
#   2. the Go benchmarks of the root package (go test -bench, -benchmem) and
#      bench/nullplugin's in-process comparison of the two read handlers;
#   3. bench/refresh: the background refresh at scale (the engine in
#      process, the emulator over loopback, the time scale shrunk).
# See BENCHMARKS.md.
#
# Every phase stops by itself and everything started here is stopped on exit.
# Knobs (environment):
#   BENCH_DURATION=3s    phase 1 duration per target per round
#   BENCH_ROUNDS=18      phase 1 rounds (target order changed each round; 6 = every order once)
#   BENCH_CONCURRENCY=16 phase 1 clients
#   BENCH_PROFILE=1      0 skips the perf profile
#   BENCH_PHASES=1,2,3   load phases to run
#   BENCH_GO=1           0 skips the Go benchmarks
#   BENCH_BENCHTIME=2000x  -benchtime of the root package's Go benchmarks
#   BENCH_PLUGIN_BENCHTIME=20000x  -benchtime of bench/nullplugin's in-process comparison
#   BENCH_REFRESH=2000   sizes of the refresh benchmark, space-separated
#                        (2000: cache_ttl 60s, ~3 min; 10000: cache_ttl 5m,
#                        ~13 min); 0 skips it
#   BENCH_REFRESH_LATENCY=200ms  emulator latency per request in it
#   BENCH_DIR=.cache/bench where logs, profiles and results are kept
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GO="${GO:-go}"
VERSION="${VERSION:-v0.1.0}"
PLUGIN=vault-plugin-secrets-nhncert
NULL_PLUGIN=nhncert-bench-null
NULL_VERSION=v0.0.1 # the null plugin's RunningVersion
OUT="${BENCH_DIR:-$ROOT/.cache/bench}"
START_TIMEOUT=60

log() { echo "bench: $*" >&2; }
die() {
  echo "bench: ERROR: $*" >&2
  exit 1
}

mkdir -p "$OUT"
RUN="$(mktemp -d "$OUT/run-$(date +%Y%m%d-%H%M%S)-XXXX")"
mkdir -p "$RUN/plugins" "$RUN/home" "$RUN/profile"
chmod 700 "$RUN/home"
RESULTS="$RUN/results.txt"

# Processes started here, "pid binary" lines; stopped in reverse order.
PIDS=()
BINS=()
stop_all() {
  local i pid bin exe n
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid="${PIDS[$i]}" bin="${BINS[$i]}"
    kill -0 "$pid" 2>/dev/null || continue
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    if [ -n "$exe" ] && [ "${exe% (deleted)}" != "$bin" ]; then continue; fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((n = 0; n < 100; n++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  done
  # Plugin processes Vault started from this run's plugin directory and did
  # not stop (only if Vault itself had to be killed).
  local p
  for p in /proc/[0-9]*; do
    exe="$(readlink "$p/exe" 2>/dev/null || true)"
    case "${exe% (deleted)}" in
      "$RUN/plugins/"*) kill -TERM "${p#/proc/}" 2>/dev/null || true ;;
    esac
  done
  PIDS=()
  BINS=()
}
# The copies of the binaries (~90 MB) go when the run ends; results, logs,
# profiles and perf's text reports stay.
cleanup() {
  stop_all
  rm -rf "$RUN/plugins" "$RUN/nhncert-emulator" "$RUN/nhncert-bench-load" "$RUN/nhncert-bench-refresh"
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

start_bg() { # start_bg LOGFILE BIN ARGS...
  local logfile="$1" bin="$2"
  shift 2
  HOME="$RUN/home" "$bin" "$@" </dev/null >"$logfile" 2>&1 &
  PIDS+=("$!")
  BINS+=("$bin")
  STARTED_PID=$!
}

wait_until() { # wait_until PID COMMAND...
  local pid="$1" i
  shift
  for ((i = 0; i < START_TIMEOUT * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log "building the plugin, the emulator, the null plugin and the load program"
make -s build VERSION="$VERSION"
"$GO" build -trimpath -o "bin/$NULL_PLUGIN" ./bench/nullplugin
"$GO" build -trimpath -o bin/nhncert-bench-load ./bench/load
"$GO" build -trimpath -o bin/nhncert-bench-refresh ./bench/refresh
VAULT="$("$ROOT/scripts/vault.sh")" || die "no Vault binary (scripts/vault.sh failed)"

# Copies, so that a concurrent `make build` cannot change a binary between
# its checksum and its start.
cp "bin/$PLUGIN" "bin/$NULL_PLUGIN" "$RUN/plugins/"
cp bin/nhncert-emulator bin/nhncert-bench-load bin/nhncert-bench-refresh "$RUN/"
chmod 755 "$RUN/plugins/"*

# The emulator, on a free loopback port of its choosing.
start_bg "$RUN/emulator.log" "$RUN/nhncert-emulator" -listen 127.0.0.1:0 -addr-file "$RUN/emulator.addr" -seed demo
EMU_PID=$STARTED_PID
wait_until "$EMU_PID" test -s "$RUN/emulator.addr" || die "the emulator did not start; see $RUN/emulator.log"
EMU_URL="http://$(cat "$RUN/emulator.addr")"

# Vault: a dev server (in-memory storage) on a free loopback port, logging
# warnings and errors only so that logging does not weigh on the numbers.
export VAULT_TOKEN=root
unset VAULT_NAMESPACE VAULT_CACERT VAULT_CAPATH VAULT_CLIENT_CERT VAULT_CLIENT_KEY VAULT_SKIP_VERIFY
VAULT_PID=
for attempt in 1 2 3 4 5; do
  PORT=$((20000 + RANDOM % 40000))
  port_in_use "$PORT" && continue
  export VAULT_ADDR="http://127.0.0.1:$PORT"
  start_bg "$RUN/vault.log" "$VAULT" server -dev -dev-root-token-id=root -log-level=warn \
    "-dev-listen-address=127.0.0.1:$PORT" "-dev-plugin-dir=$RUN/plugins"
  VAULT_PID=$STARTED_PID
  if wait_until "$VAULT_PID" env HOME="$RUN/home" "$VAULT" status; then break; fi
  grep -q "address already in use" "$RUN/vault.log" || die "Vault did not start; see $RUN/vault.log"
  VAULT_PID=
done
[ -n "$VAULT_PID" ] || die "Vault did not start; see $RUN/vault.log"

v() { HOME="$RUN/home" "$VAULT" "$@" >/dev/null; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
v plugin register -sha256="$(sha "$RUN/plugins/$PLUGIN")" -version="$VERSION" secret "$PLUGIN"
v plugin register -sha256="$(sha "$RUN/plugins/$NULL_PLUGIN")" -version="$NULL_VERSION" secret "$NULL_PLUGIN"
v secrets enable -path=nhncert -plugin-version="$VERSION" "$PLUGIN"
v secrets enable -path=null -plugin-version="$NULL_VERSION" "$NULL_PLUGIN"
v secrets enable -path=kv -version=1 kv
v write nhncert/config endpoint="$EMU_URL" auth_endpoint="$EMU_URL" \
  app_key=demo-app-key access_key_id=demo-access-key-id secret_access_key=demo-secret-access-key

{
  echo "nhncert benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nproc) CPUs, $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr)"
  echo "software: $("$GO" version | cut -d' ' -f3-), $("$VAULT" version | cut -d' ' -f1-2 | tr -d ,) dev server (in-memory storage, log level warn), plugin $VERSION"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RESULTS"

PROFILE_ARGS=()
if [ "${BENCH_PROFILE:-1}" = 1 ]; then PROFILE_ARGS=(-profile-dir "$RUN/profile"); fi
status=0
# A hard bound on top of the load program's own (timeout(1) if present).
TIMEOUT=()
command -v timeout >/dev/null 2>&1 && TIMEOUT=(timeout -k 10 1800)
"${TIMEOUT[@]}" "$RUN/nhncert-bench-load" \
  -vault-addr "$VAULT_ADDR" -vault-token root -vault-pid "$VAULT_PID" \
  -emulator "$EMU_URL" -plugin-dir "$RUN/plugins" \
  -nhncert-plugin "$PLUGIN" -nhncert-version "$VERSION" -null-plugin "$NULL_PLUGIN" \
  -duration "${BENCH_DURATION:-3s}" -rounds "${BENCH_ROUNDS:-18}" -concurrency "${BENCH_CONCURRENCY:-16}" \
  -phases "${BENCH_PHASES:-1,2,3}" "${PROFILE_ARGS[@]}" 2>&1 | tee "$RUN/load.txt" | tee -a "$RESULTS" || status=1

# Vault and the emulator are not needed for the Go benchmarks.
stop_all

if [ "${BENCH_GO:-1}" = 1 ]; then
  {
    echo
    echo "== Go benchmarks (in-process, no Vault): go test -run '^\$' -bench . -skip Hostile -benchmem -benchtime ${BENCH_BENCHTIME:-2000x} . ./certfile/ =="
  } | tee -a "$RESULTS"
  if ! "${TIMEOUT[@]}" "$GO" test -run '^$' -bench . -skip Hostile -benchmem -benchtime "${BENCH_BENCHTIME:-2000x}" -count 1 -timeout 10m . ./certfile/ 2>&1 |
    tee "$RUN/gobench.txt" | grep -E '^(Benchmark|goos|goarch|cpu|PASS|FAIL|ok)' | tee -a "$RESULTS"; then
    status=1
  fi
  # The worst file the chain search can be given (32 cross-certified
  # RSA-4096 certificates): the target is about a second per parse.
  echo "== hostile file: go test -run '^\$' -bench Hostile -benchtime ${BENCH_HOSTILE_BENCHTIME:-5x} . ./certfile/ (target: about 1 s/op) ==" | tee -a "$RESULTS"
  if ! "${TIMEOUT[@]}" "$GO" test -run '^$' -bench Hostile -benchmem -benchtime "${BENCH_HOSTILE_BENCHTIME:-5x}" -count 1 -timeout 10m . ./certfile/ 2>&1 |
    tee "$RUN/gobench-hostile.txt" | grep -E '^(Benchmark|PASS|FAIL|ok)' | tee -a "$RESULTS"; then
    status=1
  fi
  # nhncert's read handler vs the null plugin's, in one process without
  # Vault: the plugin-side cost of a cached read, gRPC left out.
  echo "== plugin-side read, in-process: go test -run '^\$' -bench . -benchmem -benchtime ${BENCH_PLUGIN_BENCHTIME:-20000x} ./bench/nullplugin ==" | tee -a "$RESULTS"
  if ! "${TIMEOUT[@]}" "$GO" test -run '^$' -bench . -benchmem -benchtime "${BENCH_PLUGIN_BENCHTIME:-20000x}" -count 1 -timeout 5m ./bench/nullplugin 2>&1 |
    tee "$RUN/gobench-null.txt" | grep -E '^(Benchmark|PASS|FAIL|ok)' | tee -a "$RESULTS"; then
    status=1
  fi
  # The emulator seeding the 10,000 certificates the list benchmarks use
  # (a speed target of the test kit, kept out of the timed unit tests).
  echo "== emulator: go test -run '^\$' -bench Seed -benchmem -benchtime 5x ./emulator ==" | tee -a "$RESULTS"
  if ! "${TIMEOUT[@]}" "$GO" test -run '^$' -bench Seed -benchmem -benchtime 5x -count 1 -timeout 5m ./emulator 2>&1 |
    grep -E '^(Benchmark|PASS|FAIL|ok)' | tee -a "$RESULTS"; then
    status=1
  fi
  # Allocations per cache hit must not grow with the number of cached
  # certificates.
  a10="$(awk '$1 ~ /^BenchmarkCacheHit\/cached=10-/ {for (i = 1; i < NF; i++) if ($(i+1) == "allocs/op") print $i}' "$RUN/gobench.txt")"
  a10k="$(awk '$1 ~ /^BenchmarkCacheHit\/cached=10000-/ {for (i = 1; i < NF; i++) if ($(i+1) == "allocs/op") print $i}' "$RUN/gobench.txt")"
  if [ -n "$a10" ] && [ -n "$a10k" ] && [ "$a10" = "$a10k" ]; then
    verdict=PASS
  else
    verdict=FAIL
    status=1
  fi
  ROW4="$(printf '%-2s  %-44s  %-58s  %s' 4 "allocs per cache hit, 10 vs 10,000 cached" "${a10:-?} vs ${a10k:-?} allocs/op" "$verdict")"
fi

# The background refresh at scale: N certificates read regularly for two
# cache_ttls after a warm-up; the time scale shrunk (cache_ttl 60s for up
# to 2,000, 5m beyond, so that the downloads it asks of NHN stay at ~33/s).
REFRESH_ROWS=()
for n in ${BENCH_REFRESH:-2000}; do
  [ "$n" = 0 ] && continue
  if [ "$n" -le 2000 ]; then ttl=60s interval=5s; else ttl=300s interval=25s; fi
  echo "== refresh at scale: bench/refresh -n $n -cache-ttl $ttl -refresh-interval $interval ==" | tee -a "$RESULTS"
  if ! "${TIMEOUT[@]}" "$RUN/nhncert-bench-refresh" -emulator-bin "$RUN/nhncert-emulator" -n "$n" \
    -cache-ttl "$ttl" -refresh-interval "$interval" -latency "${BENCH_REFRESH_LATENCY:-200ms}" 2>&1 |
    tee "$RUN/refresh-$n.txt" | tee -a "$RESULTS"; then
    status=1
  fi
  v="$(sed -n 's/^verdict: \([A-Z]*\).*/\1/p' "$RUN/refresh-$n.txt")"
  w="$(sed -n 's/^reads: .*waited on NHN ([^)]*): \([0-9]* ([0-9.]*%)\).*/\1/p' "$RUN/refresh-$n.txt")"
  d="$(sed -n 's/^NHN: .* = \([0-9.]*\) per certificate.*/\1/p' "$RUN/refresh-$n.txt")"
  REFRESH_ROWS+=("$(printf '%-2s  %-44s  %-58s  %s' 5 "refresh at N=$n: reads waiting, downloads/ttl" "${w:-?} reads waited, ${d:-?} downloads/cert/ttl" "${v:-FAIL}")")
done

# The table again, all targets together.
{
  echo
  echo "== make bench: summary =="
  sed -n '/^== summary/,$p' "$RUN/load.txt" | sed 1d
  [ -z "${ROW4:-}" ] || echo "$ROW4"
  for r in "${REFRESH_ROWS[@]}"; do echo "$r"; done
} | tee -a "$RESULTS"

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS"
log "results in $RESULTS (logs and profiles in $RUN)"
exit "$status"
