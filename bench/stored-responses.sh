#!/usr/bin/env bash
# The signer's benchmark, one command, one run (issue: presigned responses):
#   1. presign throughput: `ocspctl presign` signing the responses of N revoked serials on all cores, beside
#      `openssl speed -multi <cores> rsa2048` (the same key type and size, the same cores) in the same run;
#   2. on-demand signing latency: requests for serials never seen before (each must be signed) at a fixed
#      rate, p50/p99 from each request's scheduled send time, and the tryLater share;
#   3. stored-response hit rate for a Zipf mix over 1M serials at 2,000 requests/s: after a warm-up, the share
#      of answers served from stored responses (1 - signatures / requests, from the responder's /metrics),
#      twice: cold (good answers are signed on first request and kept), and primed (the 1M serials listed as
#      the issuer's issued_serials with presign.good_from_issued_serials, presigned by `ocspctl presign` first;
#      skip with --no-prime, it takes about 1M / the signing rate).
# Everything is RSA-2048 with SHA-256, as JPKI's responses are. Figures: bench/README.md.
#
# Usage: bench/stored-responses.sh [--revoked N] [--zipf S] [--warmup SECONDS] [--measure SECONDS]
#                                  [--rate R] [--signing-rate R] [--work-dir DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REVOKED=20000
ZIPF=1.0
WARMUP=120
MEASURE=60
RATE=2000
SIGNING_RATE=500
WORK=$ROOT/bench/out/stored-responses
PRIME=1
while (( $# )); do
  case $1 in
    --revoked) REVOKED=$2; shift 2 ;;
    --zipf) ZIPF=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --measure) MEASURE=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --signing-rate) SIGNING_RATE=$2; shift 2 ;;
    --work-dir) WORK=$2; shift 2 ;;
    --no-prime) PRIME=0; shift ;;
    *) echo "usage: $0 [--revoked N] [--zipf S] [--warmup S] [--measure S] [--rate R] [--signing-rate R] [--work-dir DIR]" >&2; exit 2 ;;
  esac
done
CORES=$(nproc)
say() { echo "stored-responses: $*" >&2; }

bash "$ROOT/scripts/setup.sh" >/dev/null
say "building the release preset"
(cd "$ROOT" && cmake --preset release >/dev/null && \
  cmake --build --preset release -j2 --target ocsp-responder ocspctl crl-gen ocsp-load >/dev/null)
BIN=$ROOT/build/release/bin
[[ -x $BIN/ocsp-load ]] || BIN=$(dirname "$(find "$ROOT/build/release" -name ocsp-load -type f | head -1)")

rm -rf "$WORK" && mkdir -p "$WORK"
cd "$WORK"
bash "$ROOT/scripts/make-demo-pki.sh" pki >/dev/null
"$BIN/crl-gen" --ca-cert pki/ca.pem --ca-key pki/ca.key --entries "$REVOKED" --seed 7 \
  --this-update "$(date -u -d '-10 min' +%Y-%m-%dT%H:%M:%SZ)" --validity-hours 48 -o revoked.crl >/dev/null
cat > responder.toml <<TOML
[responder]
listen = "127.0.0.1:0"
workers = 1
signer_threads = $CORES
max_pending_signatures = 4096
[store]
path = "store"
[metrics]
listen = "127.0.0.1:0"
[import]
archive_directory = "off"
[presign]
batch = 65536
max_good_responses = 2000000
[[issuer]]
name = "bench"
certificate = "pki/ca.pem"
responder_certificate = "pki/responder.pem"
responder_key = "pki/responder.key"
TOML
"$BIN/ocspctl" --config responder.toml import --issuer pki/ca.pem revoked.crl >/dev/null

say "1/3 presign $REVOKED revoked serials on $CORES threads, and openssl speed on $CORES processes"
# openssl speed runs before and after ours and counts as the mean of both: on a shared machine the load
# drifts, and bracketing puts ours in the same conditions as the yardstick.
openssl speed -multi "$CORES" -seconds 10 rsa2048 > speed-before.txt 2>/dev/null
"$BIN/ocspctl" --config responder.toml presign --json --threads "$CORES" > presign.json
OURS=$(sed -E 's/.*"signatures_per_second":([0-9.]+).*/\1/' presign.json)
openssl speed -multi "$CORES" -seconds 10 rsa2048 > speed-after.txt 2>/dev/null
OPENSSL=$(cat speed-before.txt speed-after.txt | awk '/^rsa 2048 bits/ { s += $6; n++ } END { printf "%.1f", s / n }')
PRESIGN_RATIO=$(awk -v a="$OURS" -v b="$OPENSSL" 'BEGIN { printf "%.2f", a / b }')

start_responder() {
  "$BIN/ocsp-responder" --config responder.toml > responder.log 2>&1 &
  RESPONDER=$!
  for _ in $(seq 100); do grep -q 'event=metrics_listening' responder.log && break; sleep 0.1; done
  PORT=$(sed -nE 's/.*event=listening address=127\.0\.0\.1:([0-9]+).*/\1/p' responder.log | head -1)
  METRICS=$(sed -nE 's/.*event=metrics_listening address=127\.0\.0\.1:([0-9]+).*/\1/p' responder.log | head -1)
}
signatures() { curl -s "http://127.0.0.1:$METRICS/metrics" | awk '/^ocsp_signer_sign_duration_seconds_count/ { print $2 }'; }
requests() { curl -s "http://127.0.0.1:$METRICS/metrics" | awk '/^ocsp_responder_requests_total/ { s += $2 } END { print s + 0 }'; }
start_responder
trap 'kill $RESPONDER 2>/dev/null || true' EXIT

say "2/3 on-demand signing: $SIGNING_RATE new serials/s for 30 s"
"$BIN/ocsp-load" --port "$PORT" --issuer pki/ca.pem --unique --serial-base 200000000 --rate "$SIGNING_RATE" \
  --duration 30 --window 30 --connections 16 > ondemand.txt
ONDEMAND=$(grep '^summary' ondemand.txt)

say "3/3 Zipf($ZIPF) over 1M serials at $RATE/s: ${WARMUP}s warm-up, then ${MEASURE}s measured"
"$BIN/ocsp-load" --port "$PORT" --issuer pki/ca.pem --serials 1000000 --serial-base 1000000 --zipf "$ZIPF" \
  --rate "$RATE" --duration "$WARMUP" --window 30 --connections 16 --seed 1 > warmup.txt
S0=$(signatures); R0=$(requests)
"$BIN/ocsp-load" --port "$PORT" --issuer pki/ca.pem --serials 1000000 --serial-base 1000000 --zipf "$ZIPF" \
  --rate "$RATE" --duration "$MEASURE" --window 30 --connections 16 --seed 2 > measure.txt
S1=$(signatures); R1=$(requests)
HIT=$(awk -v s=$((S1 - S0)) -v r=$((R1 - R0)) 'BEGIN { printf "%.2f", 100 * (1 - s / r) }')
MEASURED=$(grep '^summary' measure.txt)
RSS=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' /proc/$RESPONDER/status)

kv() { sed -nE "s/.* $1=([^ ]+).*/\1/p" <<<"$2"; }
echo
echo "host: $CORES cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(openssl version)"
printf '%-58s %s\n' "presign (ocspctl presign, $CORES threads, RSA-2048)" "$OURS signatures/s"
printf '%-58s %s\n' "openssl speed -multi $CORES rsa2048 (sign)" "$OPENSSL signatures/s"
printf '%-58s %s   (target >= 0.9x)\n' "presign / openssl speed" "${PRESIGN_RATIO}x"
printf '%-58s p50 %s ms, p99 %s ms, tryLater %s%%, errors %s\n' "on-demand signing at $SIGNING_RATE/s (new serials)" \
  "$(kv p50_ms "$ONDEMAND")" "$(kv p99_ms "$ONDEMAND")" "$(kv trylater_pct "$ONDEMAND")" "$(kv errors "$ONDEMAND")"
printf '%-58s %s%% stored (%s signatures for %s requests)  (target >= 99%%)\n' \
  "Zipf($ZIPF) 1M serials at $RATE/s, after ${WARMUP}s" "$HIT" $((S1 - S0)) $((R1 - R0))
printf '%-58s p50 %s ms, p99 %s ms, tryLater %s%% (target < 0.1%%), errors %s, %s rps\n' "  the measured window" \
  "$(kv p50_ms "$MEASURED")" "$(kv p99_ms "$MEASURED")" "$(kv trylater_pct "$MEASURED")" "$(kv errors "$MEASURED")" \
  "$(kv rps "$MEASURED")"
printf '%-58s %s MiB\n' "responder peak RSS" "$RSS"

if (( PRIME )); then
  kill $RESPONDER 2>/dev/null || true
  wait $RESPONDER 2>/dev/null || true
  printf '%x-%x\n' 1000000 1999999 > issued.txt
  sed -i -e 's|^responder_key = "pki/responder.key"$|responder_key = "pki/responder.key"\nissued_serials = "issued.txt"|' \
         -e 's|^batch = 65536$|batch = 65536\ngood_from_issued_serials = true|' responder.toml
  say "primed: presigning good responses for the 1M listed serials (ocspctl presign)"
  "$BIN/ocspctl" --config responder.toml presign --json --threads "$CORES" > prime.json
  start_responder
  S0=$(signatures); R0=$(requests)
  "$BIN/ocsp-load" --port "$PORT" --issuer pki/ca.pem --serials 1000000 --serial-base 1000000 --zipf "$ZIPF" \
    --rate "$RATE" --duration "$MEASURE" --window 30 --connections 16 --seed 3 > primed.txt
  S1=$(signatures); R1=$(requests)
  PRIMED_HIT=$(awk -v s=$((S1 - S0)) -v r=$((R1 - R0)) 'BEGIN { printf "%.2f", 100 * (1 - s / r) }')
  PRIMED=$(grep '^summary' primed.txt)
  printf '%-58s %s signatures/s, %s s\n' "priming: ocspctl presign of the 1M listed serials" \
    "$(sed -E 's/.*"signatures_per_second":([0-9.]+).*/\1/' prime.json)" "$(sed -E 's/.*"seconds":([0-9.]+).*/\1/' prime.json)"
  printf '%-58s %s%% stored (%s signatures for %s requests)  (target >= 99%%)\n' \
    "Zipf($ZIPF) 1M serials at $RATE/s, primed" "$PRIMED_HIT" $((S1 - S0)) $((R1 - R0))
  printf '%-58s p50 %s ms, p99 %s ms, tryLater %s%% (target < 0.1%%), errors %s, %s rps\n' "  the measured window" \
    "$(kv p50_ms "$PRIMED")" "$(kv p99_ms "$PRIMED")" "$(kv trylater_pct "$PRIMED")" "$(kv errors "$PRIMED")" \
    "$(kv rps "$PRIMED")"
fi
