#!/usr/bin/env bash
# The responder's side of systemd's protocols, without systemd as PID 1: systemd-socket-activate passes a
# listening socket (LISTEN_FDS) and starts the responder on the first connection, which must still be answered;
# a socat datagram socket stands in for NOTIFY_SOCKET and records READY=1, STATUS=, WATCHDOG=1 (with
# WATCHDOG_USEC set), RELOADING=1 + READY=1 around SIGHUP, and STOPPING=1 on SIGTERM.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v socat >/dev/null || fail "socat not found; run scripts/setup.sh"
ACTIVATE=$(command -v systemd-socket-activate || true)
[[ -n "$ACTIVATE" ]] || fail "systemd-socket-activate not found; run scripts/setup.sh"

ops_pki
ops_request good "$WORK/pki/ca.pem" 0x1001 -no_nonce
port=$(ops_free_port)
cat > "$WORK/ocsp-responder.toml" <<TOML
[responder]
listen = "127.0.0.1:1"   # never bound: the socket comes from systemd-socket-activate
workers = 2
[store]
path = "$WORK/store"
map_size_mib = 64
[metrics]
listen = ""
[[issuer]]
name = "demo-ca"
certificate = "$WORK/pki/ca.pem"
responder_certificate = "$WORK/pki/responder.pem"
responder_key = "$WORK/pki/responder.key"
TOML

socat -u UNIX-RECV:"$WORK/notify.sock" OPEN:"$WORK/notify.log",creat,append &
EXTRA_PIDS+=($!)
for _ in $(seq 100); do [[ -S "$WORK/notify.sock" ]] && break; sleep 0.05; done

"$ACTIVATE" -l "127.0.0.1:$port" --fdname=ocsp -E NOTIFY_SOCKET="$WORK/notify.sock" -E WATCHDOG_USEC=400000 \
  "$OCSP_RESPONDER" --config "$WORK/ocsp-responder.toml" >"$WORK/responder.log" 2>&1 &
RESPONDER_PID=$!  # systemd-socket-activate execs the responder in place: the same pid
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

# The first request starts the responder and is answered by it.
URL="http://127.0.0.1:$port/"
code=$("$CURL" -s -m 20 -o "$WORK/first.body" -w '%{http_code}' "$URL$(<"$WORK/good.path")") || true
[[ "$code" == 200 ]] || fail "the first request on the activated socket got '$code'"
ops_is_successful "$WORK/first.body" || fail "the first answer is not a successful OCSP response"
grep -q 'socket_activated=yes' "$WORK/responder.log" || fail "the responder did not take the passed socket"
echo "ok: socket activation: the connection that started the responder was answered"

wait_for_notify() {  # NEEDLE [COUNT]
  for _ in $(seq 100); do
    (( $(grep -o -- "$1" "$WORK/notify.log" 2>/dev/null | wc -l) >= ${2:-1} )) && return 0
    sleep 0.05
  done
  echo "--- notifications:"; cat "$WORK/notify.log" 2>/dev/null || true
  fail "no '$1' (x${2:-1}) sent to NOTIFY_SOCKET"
}
wait_for_notify 'READY=1'
wait_for_notify 'STATUS=answering for 1 issuer(s)'
wait_for_notify 'WATCHDOG=1' 3   # every 200 ms while both workers' heartbeats are fresh
echo "ok: READY=1, STATUS=, WATCHDOG=1"

kill -HUP "$RESPONDER_PID"
wait_for_notify 'RELOADING=1'
wait_for_notify 'MONOTONIC_USEC='
wait_for_notify 'READY=1' 2
kill -0 "$RESPONDER_PID" || fail "SIGHUP ended the responder"
echo "ok: SIGHUP: RELOADING=1 then READY=1"

kill -TERM "$RESPONDER_PID"
status=0
wait "$RESPONDER_PID" || status=$?
RESPONDER_PID=
[[ "$status" -eq 0 ]] || fail "exit status $status after SIGTERM"
wait_for_notify 'STOPPING=1'
echo "ok: SIGTERM: STOPPING=1, exit 0"
echo "PASS"
