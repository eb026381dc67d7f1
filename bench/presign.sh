#!/usr/bin/env bash
# The signing benchmark in one command (bench/README.md, "Signing benchmark"): for each key type, in one run,
#   presign-bench --threads T --seconds S             our Signer::Sign (one-CertID revoked response) on T threads,
#                                                     interleaved in half-second slices with the bare key operation
#                                                     on the same key and threads ("raw")
#   openssl speed -elapsed -multi T -seconds S <alg>  OpenSSL's own signature rate for the same key type
# and one table: signatures/s, ours/raw and ours/openssl (target >= 0.90 for both). Everything is timed by the
# wall clock (`openssl speed -elapsed`): CPU-time accounting proved unreliable on the shared benchmark machine.
# Other jobs move the rates; ours/raw, measured interleaved, is the figure they disturb least. --repeat R runs
# each side R times, alternating, and keeps each one's best.
#
# Exit status: 0 when every command ran (whatever the ratios: this is a benchmark, not a test), 1 when a
# command failed, 2 on bad usage.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

KEYS=rsa2048,ecdsap256,ed25519
SECONDS_EACH=5
THREADS=$(nproc)
REPEAT=1
WORK=$ROOT/bench/out/presign
BUILD=1
BIN_DIR=$ROOT/build/release/bin
TARGET=0.90

usage() {
  cat <<EOF
usage: bench/presign.sh [options]
  --keys K,...      key types among rsa2048, rsa3072, ecdsap256, ecdsap384, ed25519 (default $KEYS)
  --seconds S       seconds per measurement (default $SECONDS_EACH)
  --threads T       signing threads and openssl speed processes (default: nproc = $THREADS)
  --repeat R        measure each side R times, alternating, and keep the best (default $REPEAT)
  --work-dir DIR    keys, certificates and results (default bench/out/presign)
  --bin-dir DIR     use presign-bench from DIR and skip the build (default: build the release preset)
EOF
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --keys) KEYS=${2:?--keys needs a value}; shift 2 ;;
    --keys=*) KEYS=${1#*=}; shift ;;
    --seconds) SECONDS_EACH=${2:?--seconds needs a value}; shift 2 ;;
    --seconds=*) SECONDS_EACH=${1#*=}; shift ;;
    --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
    --threads=*) THREADS=${1#*=}; shift ;;
    --repeat) REPEAT=${2:?--repeat needs a value}; shift 2 ;;
    --repeat=*) REPEAT=${1#*=}; shift ;;
    --work-dir) WORK=${2:?--work-dir needs a value}; shift 2 ;;
    --work-dir=*) WORK=${1#*=}; shift ;;
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a value}; BUILD=0; shift 2 ;;
    --bin-dir=*) BIN_DIR=${1#*=}; BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "presign.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
for number in "$SECONDS_EACH" "$THREADS" "$REPEAT"; do
  [[ $number =~ ^[0-9]+$ && $number -ge 1 ]] || { echo "presign.sh: $number is not a positive integer" >&2; exit 2; }
done

if [[ $BUILD -eq 1 ]]; then
  (cd "$ROOT" && cmake --preset release >/dev/null && cmake --build --preset release --target presign-bench) \
    || { echo "presign.sh: the release build failed" >&2; exit 1; }
fi
BENCH=$BIN_DIR/presign-bench
[[ -x $BENCH ]] || { echo "presign.sh: $BENCH not found" >&2; exit 1; }

mkdir -p "$WORK/pki" "$WORK/results"
PKI=$WORK/pki
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

# A bench CA (EC P-256: its key only signs the responder certificates) and one responder per key type.
if [[ ! -f $PKI/ca.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.pem" \
    -subj "/C=JP/O=JPKI-BENCH/OU=Bench Signing CA" -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
fi
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=OCSPSigning\n' \
  >"$PKI/responder.ext"

genkey_args() {
  case $1 in
    rsa2048) echo "-algorithm RSA -pkeyopt rsa_keygen_bits:2048" ;;
    rsa3072) echo "-algorithm RSA -pkeyopt rsa_keygen_bits:3072" ;;
    ecdsap256) echo "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" ;;
    ecdsap384) echo "-algorithm EC -pkeyopt ec_paramgen_curve:P-384" ;;
    ed25519) echo "-algorithm ED25519" ;;
    *) return 1 ;;
  esac
}
# The line of `openssl speed`'s table for the algorithm; sign/s is its second-to-last column.
speed_line() {
  case $1 in
    rsa2048) echo '^rsa 2048 bits' ;;
    rsa3072) echo '^rsa 3072 bits' ;;
    ecdsap256) echo 'ecdsa \(nistp256\)' ;;
    ecdsap384) echo 'ecdsa \(nistp384\)' ;;
    ed25519) echo 'EdDSA \(Ed25519\)' ;;
  esac
}

responder() {
  local key=$1
  if [[ ! -f $PKI/$key.pem ]]; then
    # shellcheck disable=SC2046
    openssl genpkey $(genkey_args "$key") -out "$PKI/$key.key" 2>/dev/null
    chmod 600 "$PKI/$key.key"
    openssl req -new -key "$PKI/$key.key" -subj "/C=JP/O=JPKI-BENCH/CN=OCSP Responder $key" -out "$PKI/$key.csr"
    openssl x509 -req -in "$PKI/$key.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial -days 3650 \
      -extfile "$PKI/responder.ext" -out "$PKI/$key.pem" 2>/dev/null
  fi
}

# Prints "<ours> <raw>" signatures per second.
ours() {
  "$BENCH" --ca "$PKI/ca.pem" --cert "$PKI/$1.pem" --key "$PKI/$1.key" --threads "$THREADS" \
    --seconds "$SECONDS_EACH" |
    sed -n 's/^signatures_per_second=\([0-9.]*\) raw_signatures_per_second=\([0-9.]*\).*/\1 \2/p'
}
theirs() {
  openssl speed -elapsed -multi "$THREADS" -seconds "$SECONDS_EACH" "$1" 2>/dev/null |
    grep -E "$(speed_line "$1")" | tail -1 | awk '{print $(NF-1)}'
}
greater() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(b + 0 > a + 0) }'; }

RESULT=$WORK/results/$STAMP.txt
status=0
row() { printf '%-10s %12s %12s %9s %15s %13s  %s\n' "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v t="$TARGET" 'BEGIN { print (r + 0 >= t + 0 ? "PASS" : "FAIL") }'; }
{
  echo "presign benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $THREADS threads, ${SECONDS_EACH}s x $REPEAT," \
    "revision $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), $(openssl version)"
  row "key" "ours sig/s" "raw sig/s" "ours/raw" "openssl sig/s" "ours/openssl" "target >= $TARGET (raw, openssl)"
} | tee "$RESULT"
IFS=, read -r -a key_list <<<"$KEYS"
for key in "${key_list[@]}"; do
  if ! genkey_args "$key" >/dev/null; then echo "presign.sh: unknown key type $key" >&2; exit 2; fi
  responder "$key"
  our_rate="" raw_rate="" their_rate=""
  for ((i = 0; i < REPEAT; i++)); do
    read -r ours_now raw_now < <(ours "$key" || true) || true
    # Keep the pair of the best run: ours and raw shared its slices.
    if [[ -n ${ours_now:-} ]] && greater "${our_rate:-0}" "$ours_now"; then our_rate=$ours_now raw_rate=$raw_now; fi
    rate=$(theirs "$key" || true)
    if [[ -n $rate ]] && greater "${their_rate:-0}" "$rate"; then their_rate=$rate; fi
  done
  if [[ -z $our_rate || -z $their_rate ]]; then
    row "$key" "${our_rate:-FAILED}" "${raw_rate:--}" "-" "${their_rate:-FAILED}" "-" "-" | tee -a "$RESULT"
    status=1
    continue
  fi
  to_raw=$(ratio "$our_rate" "$raw_rate")
  to_openssl=$(ratio "$our_rate" "$their_rate")
  row "$key" "$our_rate" "$raw_rate" "$to_raw" "$their_rate" "$to_openssl" \
    "$(verdict "$to_raw"), $(verdict "$to_openssl")" | tee -a "$RESULT"
done
echo "results: $RESULT"
exit $status
