#!/usr/bin/env bash
# SIGHUP under load: four clients keep requesting over keep-alive connections while the responder is told to
# reload five times. Every request must be answered with a successful OCSP response, no client may have to open
# a second connection (a reload drops none), and the process must still be the same one at the end.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ops_pki
ops_start_responder ""
ops_request good "$WORK/pki/ca.pem" 0x1001 -no_nonce
ops_request revoked "$WORK/pki/ca.pem" 0x1002 -no_nonce

CLIENTS=4
REQUESTS=600   # per client
for c in $(seq "$CLIENTS"); do
  : > "$WORK/client$c.curl"
  for i in $(seq "$REQUESTS"); do
    name=good; ((i % 2)) && name=revoked
    printf 'url = "%s%s"\noutput = "/dev/null"\n' "$URL" "$(<"$WORK/$name.path")" >> "$WORK/client$c.curl"
  done
done

# One curl per client: it reuses one connection for all its requests unless the server closes it.
# %{num_connects} is 1 on the transfer that had to connect, 0 on those that reused the connection.
pids=()
for c in $(seq "$CLIENTS"); do
  "$CURL" -s -K "$WORK/client$c.curl" -w '%{http_code} %{size_download} %{num_connects}\n' \
    > "$WORK/client$c.out" 2>"$WORK/client$c.err" &
  pids+=($!)
done
EXTRA_PIDS+=("${pids[@]}")

sleep 0.3
reloads=0
for _ in 1 2 3 4 5; do
  kill -HUP "$RESPONDER_PID"
  reloads=$((reloads + 1))
  sleep 0.3
done
for pid in "${pids[@]}"; do wait "$pid" || fail "a client failed: $(cat "$WORK"/client*.err)"; done
EXTRA_PIDS=()

kill -0 "$RESPONDER_PID" 2>/dev/null || fail "the responder did not survive SIGHUP"
total=0
for c in $(seq "$CLIENTS"); do
  lines=$(wc -l < "$WORK/client$c.out")
  [[ "$lines" -eq "$REQUESTS" ]] || fail "client $c got $lines answers of $REQUESTS"
  bad=$(awk '$1 != 200 || $2 < 100' "$WORK/client$c.out" | head -n 3)
  [[ -z "$bad" ]] || fail "client $c got answers that are not signed OCSP responses (code size connects): $bad"
  connects=$(awk '{ n += $3 } END { print n }' "$WORK/client$c.out")
  [[ "$connects" -eq 1 ]] || fail "client $c had to connect $connects times: a reload dropped its connection"
  total=$((total + lines))
done

# The reloads happened while the clients were being answered.
seen=$(grep -c 'event=reloaded' "$WORK/responder.log" || true)
[[ "$seen" -eq "$reloads" ]] || fail "the log shows $seen reloads of $reloads"
# And answers are still right afterwards (verified against the responder certificate).
out=$(openssl ocsp -issuer "$WORK/pki/ca.pem" -serial 0x1001 -serial 0x1002 -url "$URL" \
      -VAfile "$WORK/pki/responder.pem" 2>&1) || fail "openssl ocsp after the reloads: $out"
grep -q '^0x1001: good' <<<"$out" && grep -q '^0x1002: revoked' <<<"$out" || fail "wrong answers after reload: $out"
echo "PASS: $total requests over $CLIENTS connections, $reloads reloads, no failed request, no dropped connection"
