#!/usr/bin/env bash
# Demo of the nhncert Vault plugin: a Vault dev server and the NHN emulator on
# 127.0.0.1, the plugin registered by sha256 and mounted at nhncert/, then
# `vault list -detailed nhncert/certs` and `vault read nhncert/certs/example.com`
# (and, against the emulator, `vault read "nhncert/certs/웹 서버 인증서"`: names
# need not be the CN since NHN's release of 2025-11-25).
# Both processes keep running in the background until `scripts/demo.sh --stop`.
#
#   scripts/demo.sh              Vault dev server + NHN EMULATOR (make demo)
#   scripts/demo.sh --real-nhn   Vault dev server + real NHN Cloud (make dev);
#                                needs NHN_APP_KEY, NHN_ACCESS_KEY_ID and
#                                NHN_SECRET_ACCESS_KEY (optional: NHN_REGION,
#                                NHN_CERT to pick the certificate to read)
#   scripts/demo.sh --stop       stop what a previous run started
#
# Needs `make build` first (bin/vault-plugin-secrets-nhncert, bin/nhncert-emulator).
# State (PIDs, logs, plugin directory) lives in $NHNCERT_DEMO_DIR, default
# .cache/demo in the repository (ignored by git).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${NHNCERT_DEMO_DIR:-$ROOT/.cache/demo}"
PIDS="$STATE/pids"
PLUGIN_NAME=vault-plugin-secrets-nhncert
PLUGIN_VERSION="${VERSION:-v0.1.0}"
PLUGIN_BIN="$ROOT/bin/$PLUGIN_NAME"
EMULATOR_BIN="$ROOT/bin/nhncert-emulator"
MOUNT=nhncert
START_TIMEOUT=60 # seconds, for each process to become ready

log() { echo "demo: $*" >&2; }
die() {
  echo "demo: ERROR: $*" >&2
  exit 1
}

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

# stop_all stops the processes listed in $PIDS ("name pid binary" lines),
# checking that each PID still runs that binary before signalling it.
stop_all() {
  [ -f "$PIDS" ] || return 0
  local name pid bin exe i
  while read -r name pid bin; do
    [ -n "${pid:-}" ] || continue
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) is not running"
      continue
    fi
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    if [ -n "$exe" ] && [ "${exe% (deleted)}" != "$bin" ]; then
      log "pid $pid is no longer $name ($exe); leaving it alone"
      continue
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) did not exit within 10s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done < <(tac "$PIDS") # the last started first: Vault before the emulator
  rm -f "$PIDS"
}

if [ "$#" -gt 1 ]; then
  usage >&2
  exit 2
fi
REAL=0
case "${1:-}" in
  "") ;;
  --real-nhn) REAL=1 ;;
  --stop)
    stop_all
    log "stopped (logs kept in $STATE)"
    exit 0
    ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac

if [ "$REAL" = 1 ]; then
  missing=()
  for v in NHN_APP_KEY NHN_ACCESS_KEY_ID NHN_SECRET_ACCESS_KEY; do
    [ -n "${!v:-}" ] || missing+=("$v")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    die "--real-nhn needs ${missing[*]} in the environment (the NHN Cloud project's app key and a User Access Key ID and Secret Access Key)"
  fi
fi

[ -x "$PLUGIN_BIN" ] || die "$PLUGIN_BIN is missing: run make build first"
[ "$REAL" = 1 ] || [ -x "$EMULATOR_BIN" ] || die "$EMULATOR_BIN is missing: run make build first"

# A vault on PATH whose version `make compat` measured (scripts/vault-versions)
# is used as it is; else the pinned one (scripts/vault.sh builds it once).
VAULT=""
if command -v vault >/dev/null 2>&1; then
  path_version=$(vault version 2>/dev/null | head -n1 | awk '{sub(/,$/, "", $2); print $2}')
  if [ -n "$path_version" ] && grep -qxF "${path_version#v}" "$ROOT/scripts/vault-versions"; then
    VAULT="$(command -v vault)"
  else
    log "vault on PATH is ${path_version:-of unknown version}, not one make compat measured ($(tr '\n' ' ' < "$ROOT/scripts/vault-versions")); using the pinned one"
  fi
fi
[ -n "$VAULT" ] || VAULT="$("$ROOT/scripts/vault.sh")" || die "no Vault binary (scripts/vault.sh failed)"
log "using $VAULT ($("$VAULT" version 2>/dev/null | head -n1))"

# A previous demo: stop it, so that this one starts clean.
if [ -f "$PIDS" ]; then
  log "stopping the previous demo first"
  stop_all
fi
rm -rf "$STATE/plugins" "$STATE/home"
mkdir -p "$STATE/plugins" "$STATE/home"
chmod 700 "$STATE" "$STATE/home"
: >"$PIDS"

# start_bg NAME LOGFILE BIN ARGS...: start BIN in the background, in a session
# of its own (so that it outlives this script and the terminal's ^C), and
# record its PID.
start_bg() {
  local name="$1" logfile="$2" bin="$3"
  shift 3
  if command -v setsid >/dev/null 2>&1; then
    HOME="$STATE/home" nohup setsid "$bin" "$@" </dev/null >"$logfile" 2>&1 &
  else
    HOME="$STATE/home" nohup "$bin" "$@" </dev/null >"$logfile" 2>&1 &
  fi
  local pid=$!
  echo "$name $pid $bin" >>"$PIDS"
  STARTED_PID=$pid
}

# wait_until DESCRIPTION PID COMMAND...: run COMMAND every 0.2s until it
# succeeds; fail if PID exits or START_TIMEOUT passes.
wait_until() {
  local what="$1" pid="$2" i
  shift 2
  for ((i = 0; i < START_TIMEOUT * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  log "timed out after ${START_TIMEOUT}s waiting for $what"
  return 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_ok HOST:PORT PATH: whether a plain HTTP GET answers 200 (bash's
# /dev/tcp, so that no curl is needed; in a subshell, so that a failed
# connection cannot end this script).
http_ok() {
  (
    exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
    IFS= read -r -t 5 status <&3 || exit 1
    case "$status" in *" 200 "*) exit 0 ;; *) exit 1 ;; esac
  ) 2>/dev/null
}

# http_post_json host:port path body: a POST of an ASCII JSON body (the
# emulator's admin API), true on a 200.
http_post_json() {
  (
    exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
    printf 'POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "$2" "$1" "${#3}" "$3" >&3
    IFS= read -r -t 5 status <&3 || exit 1
    case "$status" in *" 200 "*) exit 0 ;; *) exit 1 ;; esac
  ) 2>/dev/null
}

fail_with_log() {
  local logfile="$1"
  shift
  echo "demo: ERROR: $*; the last lines of $logfile:" >&2
  tail -n 30 "$logfile" >&2 || true
  stop_all
  exit 1
}

# The emulator: a free port of its choosing, written to an address file.
if [ "$REAL" = 0 ]; then
  rm -f "$STATE/emulator.addr"
  start_bg nhncert-emulator "$STATE/emulator.log" "$EMULATOR_BIN" \
    -listen 127.0.0.1:0 -addr-file "$STATE/emulator.addr" -seed demo
  EMU_PID=$STARTED_PID
  wait_until "the emulator's address file" "$EMU_PID" test -s "$STATE/emulator.addr" ||
    fail_with_log "$STATE/emulator.log" "the emulator did not start"
  EMU_URL="http://$(cat "$STATE/emulator.addr")"
  wait_until "the emulator's health endpoint" "$EMU_PID" http_ok "${EMU_URL#http://}" /_emulator/health ||
    fail_with_log "$STATE/emulator.log" "the emulator does not answer at $EMU_URL"
  log "NHN emulator (made-up certificates, NOT real NHN) at $EMU_URL, pid $EMU_PID"
fi

# Vault: a dev server on a free loopback port, with the plugin directory.
cp "$PLUGIN_BIN" "$STATE/plugins/$PLUGIN_NAME"
chmod 755 "$STATE/plugins/$PLUGIN_NAME"
SHA="$(sha256sum "$STATE/plugins/$PLUGIN_NAME" | awk '{print $1}')"
export VAULT_TOKEN=root
unset VAULT_NAMESPACE VAULT_CACERT VAULT_CAPATH VAULT_CLIENT_CERT VAULT_CLIENT_KEY VAULT_SKIP_VERIFY
for attempt in 1 2 3 4 5; do
  PORT=$((20000 + RANDOM % 40000))
  port_in_use "$PORT" && continue
  export VAULT_ADDR="http://127.0.0.1:$PORT"
  start_bg vault "$STATE/vault.log" "$VAULT" server -dev -dev-root-token-id=root \
    "-dev-listen-address=127.0.0.1:$PORT" "-dev-plugin-dir=$STATE/plugins"
  VAULT_PID=$STARTED_PID
  if wait_until "Vault to unseal" "$VAULT_PID" env HOME="$STATE/home" "$VAULT" status; then
    break
  fi
  if kill -0 "$VAULT_PID" 2>/dev/null || ! grep -q "address already in use" "$STATE/vault.log"; then
    fail_with_log "$STATE/vault.log" "Vault did not start"
  fi
  log "port $PORT was taken; trying another"
  VAULT_PID=
done
[ -n "${VAULT_PID:-}" ] || fail_with_log "$STATE/vault.log" "Vault did not start"
log "Vault $("$VAULT" version | awk '{sub(/,$/, "", $2); print $2}') dev server at $VAULT_ADDR, pid $VAULT_PID"

v() {
  echo "\$ vault $*" >&2
  HOME="$STATE/home" "$VAULT" "$@"
}

{
  v plugin register -sha256="$SHA" -version="$PLUGIN_VERSION" secret "$PLUGIN_NAME" &&
    v secrets enable -path="$MOUNT" -plugin-version="$PLUGIN_VERSION" "$PLUGIN_NAME"
} || fail_with_log "$STATE/vault.log" "registering or enabling the plugin failed"

if [ "$REAL" = 1 ]; then
  # The secret goes through stdin, never on a command line.
  echo "\$ vault write $MOUNT/config app_key=... access_key_id=... secret_access_key=- ${NHN_REGION:+region=$NHN_REGION}" >&2
  printf '%s' "$NHN_SECRET_ACCESS_KEY" | HOME="$STATE/home" "$VAULT" write "$MOUNT/config" \
    app_key="$NHN_APP_KEY" access_key_id="$NHN_ACCESS_KEY_ID" secret_access_key=- \
    ${NHN_REGION:+region="$NHN_REGION"} ||
    fail_with_log "$STATE/vault.log" "writing the config failed"
else
  # The emulator's demo credentials (not secret).
  v write "$MOUNT/config" endpoint="$EMU_URL" auth_endpoint="$EMU_URL" \
    app_key=demo-app-key access_key_id=demo-access-key-id secret_access_key=demo-secret-access-key ||
    fail_with_log "$STATE/vault.log" "writing the config failed"
fi

echo
v read "$MOUNT/config" || true
echo
# Against the emulator these must work; against real NHN they may fail for
# reasons of the account (the demo is left running to look into it).
demo_failed() {
  if [ "$REAL" = 0 ]; then fail_with_log "$STATE/vault.log" "$*"; fi
  log "$* (see $STATE/vault.log)"
}
v list -detailed "$MOUNT/certs" || demo_failed "listing the certificates failed"
echo
CERT=example.com
if [ "$REAL" = 1 ]; then
  CERT="${NHN_CERT:-$({ HOME="$STATE/home" "$VAULT" list -format=json "$MOUNT/certs" 2>/dev/null || true; } | tr -d '[]" \n' | cut -d, -f1)}"
fi
if [ -n "$CERT" ]; then
  v read "$MOUNT/certs/$CERT" || demo_failed "reading $CERT failed"
  if [ "$REAL" = 0 ]; then
    # A name with spaces and Hangul goes as it is, quoted for the shell.
    echo
    v read "$MOUNT/certs/웹 서버 인증서" || demo_failed "reading 웹 서버 인증서 failed"
    # A certificate whose key NHN holds encrypted (uploaded with a
    # passphrase): refused until its passphrase is written to Vault, once.
    ENC=encrypted.example.com
    http_post_json "${EMU_URL#http://}" /_emulator/certs \
      '{"name":"'$ENC'","key_type":"rsa","key_passphrase":"demo-passphrase","key_encryption":"legacy"}' ||
      demo_failed "adding $ENC to the emulator failed"
    echo
    v read "$MOUNT/certs/$ENC" && demo_failed "$ENC was served without its passphrase"
    echo
    printf '%s' demo-passphrase | v write "$MOUNT/passphrases/$ENC" passphrase=- ||
      demo_failed "writing the passphrase of $ENC failed"
    v read "$MOUNT/passphrases/$ENC" || demo_failed "reading the passphrase state of $ENC failed"
    v read -field=serial_number "$MOUNT/certs/$ENC" || demo_failed "reading $ENC with its passphrase failed"
    echo
  fi
else
  log "no certificate to read"
  CERT="<name>"
fi

cat <<EOF

The demo is running in the background:
  Vault dev server   $VAULT_ADDR (pid $VAULT_PID, log $STATE/vault.log)
EOF
if [ "$REAL" = 0 ]; then
  echo "  NHN emulator       $EMU_URL (pid $EMU_PID, log $STATE/emulator.log; made-up certificates, NOT real NHN)"
fi
cat <<EOF

Talk to it:
  export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root
  $VAULT list -detailed $MOUNT/certs
  $VAULT read $MOUNT/certs/$CERT
  $VAULT read "$MOUNT/certs/example.com (new)"
  $VAULT read -field=certificate $MOUNT/certs/$CERT > cert.pem
  $VAULT path-help $MOUNT/certs/$CERT

Stop it:
  scripts/demo.sh --stop
EOF
