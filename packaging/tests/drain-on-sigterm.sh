#!/usr/bin/env bash
# SIGTERM under load. With responder.drain_timeout_seconds = 5: the process stops accepting, finishes what is in
# flight, and exits 0 well within the timeout; every answer a client received is a signed OCSP response (clients
# that connect after the stop are refused, which is the point). With drain_timeout_seconds = 0 it leaves at once
# even with requests in flight: the drain is bounded.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ops_pki
ops_request good "$WORK/pki/ca.pem" 0x1001 -no_nonce

# load CLIENTS REQUESTS: background curls, each sending REQUESTS GETs over one connection.
load() {
  pids=()
  for c in $(seq "$1"); do
    : > "$WORK/client$c.curl"
    for _ in $(seq "$2"); do
      printf 'url = "%s%s"\noutput = "/dev/null"\n' "$URL" "$(<"$WORK/good.path")" >> "$WORK/client$c.curl"
    done
    "$CURL" -s -K "$WORK/client$c.curl" -w '%{http_code} %{size_download}\n' > "$WORK/client$c.out" 2>/dev/null &
    pids+=($!)
  done
  EXTRA_PIDS+=("${pids[@]}")
}

# stop_under_load: SIGTERM after a moment of load; sets `seconds` (how long the process took to exit) and
# `status` (its exit status).
stop_under_load() {
  sleep 0.5
  local started ended
  status=0
  started=$(date +%s.%N)
  kill -TERM "$RESPONDER_PID"
  wait "$RESPONDER_PID" || status=$?
  ended=$(date +%s.%N)
  RESPONDER_PID=
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  EXTRA_PIDS=()
  seconds=$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.2f", b - a }')
}

# 1. A generous timeout: in-flight requests finish, nothing is abandoned, exit 0.
ops_start_responder "drain_timeout_seconds = 5"
load 4 2000
stop_under_load
[[ "$status" -eq 0 ]] || fail "exit status $status after SIGTERM"
awk -v s="$seconds" 'BEGIN { exit !(s < 5) }' || fail "took $seconds s to stop (timeout 5 s)"
grep -q 'event=drained abandoned=0' "$WORK/responder.log" || fail "the drain abandoned requests"
answered=$(cat "$WORK"/client*.out | awk '$1 == 200' | wc -l)
broken=$(cat "$WORK"/client*.out | awk '$1 == 200 && $2 < 100' | wc -l)
[[ "$answered" -gt 0 ]] || fail "no request was answered before the stop"
[[ "$broken" -eq 0 ]] || fail "$broken answers were not signed OCSP responses"
refused=$(cat "$WORK"/client*.out | awk '$1 != 200' | wc -l)
echo "ok: drained in $seconds s; $answered requests answered, $refused refused after the stop"

# 2. No time at all: the process must not wait for its in-flight requests.
mv "$WORK/responder.log" "$WORK/responder-1.log"
ops_start_responder "drain_timeout_seconds = 0"
load 4 2000
stop_under_load
[[ "$status" -eq 0 ]] || fail "exit status $status after SIGTERM with drain_timeout_seconds = 0"
awk -v s="$seconds" 'BEGIN { exit !(s < 2) }' || fail "took $seconds s to stop with drain_timeout_seconds = 0"
grep -q 'event=drained' "$WORK/responder.log" || fail "no drained event in the log"
echo "ok: with drain_timeout_seconds = 0 it stopped in $seconds s"
echo "PASS"
