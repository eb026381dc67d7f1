#!/usr/bin/env bash
# The main job: on a fresh Debian 12 machine (as root) this installs the dependencies, builds the release
# binaries, creates a demo PKI, imports its CRL, starts the responder on 127.0.0.1 in the background and queries
# it with `openssl ocsp`. Exits 0 only if the responder answered 0x1001 good and 0x1002 revoked with a response
# that verifies. Safe to re-run: a responder started by a previous run is stopped first.
#
# Environment: OCSP_DEMO_PORT (default 8080), OCSP_DEMO_METRICS_PORT (default 9810).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

PORT=${OCSP_DEMO_PORT:-8080}
METRICS_PORT=${OCSP_DEMO_METRICS_PORT:-9810}
for p in "$PORT" "$METRICS_PORT"; do
  [[ "$p" =~ ^[0-9]{1,5}$ ]] && ((10#$p > 0 && 10#$p < 65536)) || { echo "demo: invalid port '$p'" >&2; exit 2; }
done
[[ "$PORT" != "$METRICS_PORT" ]] || { echo "demo: OCSP and metrics ports must differ" >&2; exit 2; }

DEMO=demo
PKI=$DEMO/pki
STORE=$DEMO/store
CONF=$DEMO/ocsp-responder.toml
LOG=$DEMO/responder.log
PIDFILE=$DEMO/responder.pid
BIN=build/release/bin
URL="http://127.0.0.1:$PORT/"

step() { printf '\n==> %s\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A pid from the pid file counts as ours only if that process really is an ocsp-responder.
demo_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid=$(<"$PIDFILE")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == ocsp-responder ]] || return 1
  echo "$pid"
}
toml_str() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }

step "Installing dependencies (scripts/setup.sh)"
bash scripts/setup.sh

step "Building the release binaries"
cmake --preset release
cmake --build --preset release

step "Creating the demo PKI in $PKI"
OCSP_DEMO_URL=$URL bash scripts/make-demo-pki.sh "$PKI"

step "Writing $CONF"
cat > "$CONF" <<EOF
# Written by scripts/demo.sh; regenerated on every run.
[responder]
listen = "127.0.0.1:$PORT"
workers = 1
signer_threads = 2
max_request_bytes = 8192

[store]
path = $(toml_str "$REPO/$STORE")
map_size_mib = 256

[metrics]
listen = "127.0.0.1:$METRICS_PORT"

[[issuer]]
name = "demo-ca"
certificate = $(toml_str "$REPO/$PKI/ca.pem")
responder_certificate = $(toml_str "$REPO/$PKI/responder.pem")
responder_key = $(toml_str "$REPO/$PKI/responder.key")
EOF

if pid=$(demo_pid); then
  step "Stopping the previous demo responder (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "demo: responder $pid did not stop after SIGTERM within 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
fi
rm -f "$PIDFILE"
if port_open "$PORT"; then
  echo "demo: something else is listening on 127.0.0.1:$PORT; choose another port with OCSP_DEMO_PORT" >&2
  exit 1
fi

step "Importing $PKI/crl.der into a fresh store ($STORE)"
rm -rf "$STORE"
"$BIN/ocspctl" --store "$STORE" import --issuer "$PKI/ca.pem" "$PKI/crl.der"

step "Checking $CONF"
"$BIN/ocsp-responder" --config "$CONF" --check-config

step "Starting ocsp-responder on 127.0.0.1:$PORT (log: $LOG)"
# The inner shell records its own pid, then becomes the responder (exec), so the pid file is right even if
# setsid has to fork.
setsid nohup sh -c 'echo $$ > "$1"; exec "$2" --config "$3"' sh "$PIDFILE" "$REPO/$BIN/ocsp-responder" \
  "$REPO/$CONF" </dev/null >"$LOG" 2>&1 &
up=0
for _ in $(seq 100); do
  if [[ -s "$PIDFILE" ]] && ! kill -0 "$(<"$PIDFILE")" 2>/dev/null; then
    break   # exited early
  fi
  if port_open "$PORT"; then up=1; break; fi
  sleep 0.1
done
if ((up == 0)); then
  if pid=$(demo_pid); then
    echo "demo: the responder did not start listening on 127.0.0.1:$PORT within 10 s. Its log ($LOG):" >&2
  else
    echo "demo: the responder exited during start-up. Its log ($LOG):" >&2
  fi
  cat "$LOG" >&2
  if pid=$(demo_pid); then kill -TERM "$pid" 2>/dev/null || true; fi
  exit 1
fi
echo "responder running, pid $(<"$PIDFILE")"

QUERY=(openssl ocsp -issuer "$PKI/ca.pem" -serial 0x1001 -serial 0x1002 -url "$URL" -VAfile "$PKI/responder.pem")
step "Querying: ${QUERY[*]}"
set +e
out=$("${QUERY[@]}" 2>&1)
rc=$?
set -e
echo "$out"

step "Store status: $BIN/ocspctl --store $STORE status"
"$BIN/ocspctl" --store "$STORE" status || echo "demo: warning: ocspctl status failed" >&2

ok=1
grep -q 'Response verify OK' <<<"$out" || { echo "demo: FAILED: the response did not verify" >&2; ok=0; }
grep -q '^0x1001: good' <<<"$out" || { echo "demo: FAILED: 0x1001 was not answered good" >&2; ok=0; }
grep -q '^0x1002: revoked' <<<"$out" || { echo "demo: FAILED: 0x1002 was not answered revoked" >&2; ok=0; }
if ((rc != 0 || ok == 0)); then
  echo "demo: openssl ocsp exit code $rc. Last lines of $LOG:" >&2
  tail -n 30 "$LOG" >&2
  echo "demo: the responder is left running for inspection; stop it with: kill \$(cat $REPO/$PIDFILE)" >&2
  exit 1
fi

cat <<EOF

==> Demo OK: 0x1001 is good, 0x1002 is revoked (keyCompromise); the response verified against the responder
    certificate. The responder keeps running in the background (pid $(<"$PIDFILE"), log $REPO/$LOG).
    Expected status of every demo serial: $REPO/$PKI/serials.txt

Query again (from $REPO):
  ${QUERY[*]}
Query all six demo certificates:
  openssl ocsp -issuer $PKI/ca.pem $(printf -- '-serial 0x%s ' 1001 1002 1003 1004 1005 1006)-url $URL -VAfile $PKI/responder.pem
Metrics:
  curl http://127.0.0.1:$METRICS_PORT/metrics
Stop the responder:
  kill \$(cat $REPO/$PIDFILE)
EOF
