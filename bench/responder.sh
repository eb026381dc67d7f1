#!/usr/bin/env bash
# The responder benchmark in one command (bench/README.md, "Responder benchmark", explains it).
#
# Four servers answer the same OCSP requests, loaded by wrk over keep-alive:
#   ocsp-responder   this project (workers and signer threads sized to the cores it may use)
#   nginx            one response's bytes as a static file, for every request: the speed-of-light reference
#   cfssl ocspserve  presigned responses from a file (Debian golang-cfssl); the file holds our responder's
#                    answers for every serial
#   openssl ocsp     the openssl CLI as a responder (index.txt), signing every request
# with GET and POST (bench/ocsp.lua), distinct serials (default 10,000; every tenth revoked), 16 and 64
# connections; pinned (server on core 0, wrk on core 1, taskset) and unpinned. Before a server's numbers are
# trusted, a sample of its answers (GET and POST) is checked with `openssl ocsp` (signature and status); a
# server that fails the check gets no numbers, and its rows say why.
# Prints one table: requests/s, p50/p99 latency, ratio to nginx, errors, peak RSS of the server.
#
# --scale: the same loads against a store of 100 million revoked entries (two CAs of 50M each, crl-gen; about
# 10 GB of disk while it runs), our responder and nginx only.
#
# Exit status: 0 when the run completed (whatever the figures); 1 when a step failed; 2 on bad usage.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SERIALS=10000
DURATION=10
CONNECTIONS=16,64
MODES=pinned,unpinned
SAMPLE=12
WORK=$ROOT/bench/out/responder
BUILD=1
BIN_DIR=$ROOT/build/release/bin
SCALE=0
SCALE_ENTRIES=100000000

usage() {
  cat <<EOF
usage: bench/responder.sh [options]
  --serials N        distinct serials requested (default $SERIALS; every tenth is revoked)
  --duration S       seconds per wrk run (default $DURATION)
  --connections L    comma-separated connection counts (default $CONNECTIONS)
  --modes L          pinned, unpinned or both (default $MODES)
  --quick            --duration 3 --serials 2000
  --scale            a store of $SCALE_ENTRIES revoked entries (crl-gen), our responder and nginx only
  --work-dir DIR     PKI, requests, stores, logs (default bench/out/responder)
  --bin-dir DIR      use ocsp-responder, ocspctl, ocsp-requests (and crl-gen) from DIR; skip the build
EOF
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --serials) SERIALS=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --connections) CONNECTIONS=${2:?}; shift 2 ;;
    --modes) MODES=${2:?}; shift 2 ;;
    --quick) DURATION=3; SERIALS=2000; shift ;;
    --scale) SCALE=1; shift ;;
    --work-dir) WORK=${2:?}; shift 2 ;;
    --bin-dir) BIN_DIR=${2:?}; BUILD=0; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "responder.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

BIN_DIR=$(realpath -m "$BIN_DIR")
WORK=$(realpath -m "$WORK")

log() { echo "responder.sh: $*" >&2; }
die() { log "$*"; exit 1; }

"$ROOT/scripts/setup.sh" >&2  # wrk, nginx, golang-cfssl, util-linux (taskset), curl, openssl
for tool in wrk nginx cfssl taskset curl openssl; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done
if [[ $BUILD == 1 ]]; then
  log "building the release preset"
  targets=(ocsp-responder ocspctl ocsp-requests)
  if [[ $SCALE == 1 ]]; then targets+=(crl-gen); fi
  (cd "$ROOT" && cmake --preset release >/dev/null && cmake --build --preset release -j2 --target "${targets[@]}") >&2
fi
CORES=$(nproc)
[[ $CORES -ge 2 ]] || die "needs at least 2 cores (server and wrk on separate cores when pinned)"

rm -rf "$WORK"
mkdir -p "$WORK"/{pki,req,resp,logs,nginx/html,nginx/tmp}
cd "$WORK"

# ---------------------------------------------------------------------------------------------------------
# PKI: an RSA-2048 CA (the JPKI key type) and its delegated responder; --scale adds a second CA (crl-gen draws
# at most 56.5M serials per CA, so 100M entries take two issuers).
log "PKI"
make_ca() {  # file-prefix OU
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "pki/$1ca.key" -out "pki/$1ca.pem" -days 30 \
    -subj "/C=JP/O=JPKI-BENCH/OU=$2" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "pki/$1responder.key" -out "pki/$1responder.csr" \
    -subj "/C=JP/O=JPKI-BENCH/CN=$2 OCSP Responder" 2>/dev/null
  printf 'extendedKeyUsage=OCSPSigning\nbasicConstraints=CA:FALSE\n1.3.6.1.5.5.7.48.1.5=ASN1:NULL\n' > pki/responder.ext
  openssl x509 -req -in "pki/$1responder.csr" -CA "pki/$1ca.pem" -CAkey "pki/$1ca.key" -CAcreateserial -days 30 \
    -extfile pki/responder.ext -out "pki/$1responder.pem" 2>/dev/null
  chmod 600 "pki/$1ca.key" "pki/$1responder.key"
}
make_ca "" "Bench Signing CA"
if [[ $SCALE == 1 ]]; then make_ca second- "Bench Signing CA 2"; fi

# Requests, and the CA database both openssl ocsp and the CRL come from: every tenth serial revoked.
FIRST_SERIAL=$((0x100000))
"$BIN_DIR/ocsp-requests" pki/ca.pem "$FIRST_SERIAL" "$SERIALS" req
EXPIRY=$(date -u -d '+20 days' +%y%m%d%H%M%SZ)
REVOKED_AT=$(date -u -d '-2 days' +%y%m%d%H%M%SZ)
awk -v expiry="$EXPIRY" -v revoked="$REVOKED_AT" '{
  serial = toupper($1); if (length(serial) % 2) serial = "0" serial
  if ((NR - 1) % 10 == 0) printf "R\t%s\t%s,keyCompromise\t%s\tunknown\t/CN=Holder %s\n", expiry, revoked, serial, serial
  else printf "V\t%s\t\t%s\tunknown\t/CN=Holder %s\n", expiry, serial, serial
}' req/serials.txt > pki/index.txt
echo 01 > pki/crlnumber
cat > pki/ca.cnf <<EOF
[ca]
default_ca = bench
[bench]
database = $WORK/pki/index.txt
crlnumber = $WORK/pki/crlnumber
default_md = sha256
default_crl_days = 7
EOF
openssl ca -config pki/ca.cnf -gencrl -keyfile pki/ca.key -cert pki/ca.pem -out pki/crl.pem 2>/dev/null
openssl crl -in pki/crl.pem -outform DER -out pki/crl.der

# The status of sample serials, for the checks: sample i is line 1 + i * SERIALS / SAMPLE of serials.txt.
# With --scale the store is crl-gen's, whose revoked serials are drawn at random: any signed status will do.
expected_status() {  # line number (1-based) -> good|revoked, or "" (any)
  if [[ $SCALE == 1 ]]; then echo ""; elif (( ($1 - 1) % 10 == 0 )); then echo revoked; else echo good; fi
}

# ---------------------------------------------------------------------------------------------------------
# Servers.
PORT_OURS=18080; PORT_NGINX=18081; PORT_CFSSL=18082; PORT_OPENSSL=18083
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_port() {  # port -> waits until it answers HTTP at all
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.05
  done
  return 1
}

# Peak RSS in KiB of a process and its children (VmHWM).
peak_rss() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

write_ours_config() {  # workers signer_threads store
  cat > ours.toml <<EOF
[responder]
listen = "127.0.0.1:$PORT_OURS"
workers = $1
signer_threads = $2
max_pending_signatures = 4096
max_connections_per_address = 1000
[store]
path = "$3"
map_size_mib = 65536
[metrics]
listen = ""
[import]
archive_directory = "off"
[[issuer]]
name = "bench-ca"
certificate = "$WORK/pki/ca.pem"
responder_certificate = "$WORK/pki/responder.pem"
responder_key = "$WORK/pki/responder.key"
EOF
  if [[ $SCALE == 1 ]]; then
    cat >> ours.toml <<EOF
[[issuer]]
name = "bench-ca-2"
certificate = "$WORK/pki/second-ca.pem"
responder_certificate = "$WORK/pki/second-responder.pem"
responder_key = "$WORK/pki/second-responder.key"
EOF
  fi
}

STORE=$WORK/store
write_ours_config 1 1 "$STORE"
if [[ $SCALE == 1 ]]; then
  for prefix in "" second-; do
    log "scale: generating a CRL of $((SCALE_ENTRIES / 2)) entries for the ${prefix:-first }CA (crl-gen), importing it"
    "$BIN_DIR/crl-gen" --ca-cert "pki/${prefix}ca.pem" --ca-key "pki/${prefix}ca.key" -n $((SCALE_ENTRIES / 2)) \
      -o "pki/${prefix}scale.der" >&2
    started=$(date +%s)
    "$BIN_DIR/ocspctl" --config ours.toml import --issuer "pki/${prefix}ca.pem" "pki/${prefix}scale.der" >&2
    log "import took $(( $(date +%s) - started )) s"
    rm -f "pki/${prefix}scale.der"
  done
  log "store: $(du -sh "$STORE" | cut -f1)"
else
  "$BIN_DIR/ocspctl" --config ours.toml import --issuer pki/ca.pem pki/crl.der >&2
fi

# Our responder's answer for every serial: the bytes cfssl serves and nginx's static file.
prefetch_responses() {
  write_ours_config 2 2 "$STORE"
  "$BIN_DIR/ocsp-responder" --config ours.toml > logs/prefetch.log 2>&1 &
  local pid=$!
  wait_port "$PORT_OURS" || die "ocsp-responder did not start: $(cat logs/prefetch.log)"
  awk -v port="$PORT_OURS" -v dir="$WORK/resp" '{printf "url = \"http://127.0.0.1:%s/%s\"\noutput = \"%s/%d.der\"\n", port, $1, dir, NR}' \
    req/get.txt > req/prefetch.curl
  curl -s -K req/prefetch.curl
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local n
  : > cfssl-responses.b64
  for n in $(seq 1 "$SERIALS"); do base64 -w0 "resp/$n.der" >> cfssl-responses.b64; echo >> cfssl-responses.b64; done
  cp resp/1.der nginx/html/response.der
}
log "fetching $SERIALS responses from ocsp-responder (for cfssl's file and nginx's static response)"
prefetch_responses

start_server() {  # name taskset-prefix... -> sets SERVER_PID
  local name=$1; shift
  case $name in
    ours)
      write_ours_config "$OURS_WORKERS" "$OURS_SIGNERS" "$STORE"
      "$@" "$BIN_DIR/ocsp-responder" --config ours.toml > "logs/ours-$MODE.log" 2>&1 &
      SERVER_PID=$!; PORT=$PORT_OURS ;;
    nginx)
      cat > nginx/nginx.conf <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
master_process on;
error_log $WORK/nginx/error.log;
pid $WORK/nginx/nginx.pid;
$( [[ $(id -u) == 0 ]] && echo "user root root;" )
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$PORT_NGINX;
    root $WORK/nginx/html;
    default_type application/ocsp-response;
    # Every GET path and every POST gets the same bytes: the static file is the speed-of-light reference.
    location / { try_files /response.der =404; error_page 405 =200 \$uri; }
  }
}
EOF
      "$@" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" > "logs/nginx-$MODE.log" 2>&1 &
      SERVER_PID=$!; PORT=$PORT_NGINX ;;
    cfssl)
      "$@" cfssl ocspserve -address 127.0.0.1 -port "$PORT_CFSSL" -responses cfssl-responses.b64 -loglevel 5 \
        > "logs/cfssl-$MODE.log" 2>&1 &
      SERVER_PID=$!; PORT=$PORT_CFSSL ;;
    openssl)
      "$@" openssl ocsp -index pki/index.txt -port "$PORT_OPENSSL" -rsigner pki/responder.pem \
        -rkey pki/responder.key -CA pki/ca.pem -nmin 60 -ignore_err > "logs/openssl-$MODE.log" 2>&1 &
      SERVER_PID=$!; PORT=$PORT_OPENSSL ;;
  esac
  PIDS+=("$SERVER_PID")
  wait_port "$PORT" || return 1
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

# Checks a sample of answers to one method: GET (curl, then openssl ocsp -respin) or POST (openssl ocsp -url).
# nginx answers every request with the response for the first serial, so only that one is checked for it.
check_answers() {  # name method -> 0 when every sampled answer verifies with the right status
  local name=$1 method=$2 i line serial expected out
  local count=$SAMPLE
  [[ $name == nginx ]] && count=1
  for ((i = 0; i < count; i++)); do
    line=$((1 + i * SERIALS / SAMPLE))
    serial=0x$(sed -n "${line}p" req/serials.txt)
    expected=$(expected_status "$line")
    if [[ $method == GET ]]; then
      rm -f "$WORK/check.der"
      curl -s -m 10 -o "$WORK/check.der" "http://127.0.0.1:$PORT/$(sed -n "${line}p" req/get.txt)" || true
      out=$(openssl ocsp -issuer pki/ca.pem -serial "$serial" -no_nonce -respin "$WORK/check.der" \
        -VAfile pki/responder.pem 2>&1) || true
    else
      out=$(timeout 10 openssl ocsp -issuer pki/ca.pem -serial "$serial" -no_nonce -url "http://127.0.0.1:$PORT/" \
        -VAfile pki/responder.pem 2>&1) || true
    fi
    if [[ $out != *"Response verify OK"* || $out != *"$serial: $expected"* || $out == *"$serial: unknown"* ]]; then
      log "$name $method $serial (expected $expected): $(head -c 300 <<<"$out")"
      return 1
    fi
  done
}

RESULTS=$WORK/results.tsv
: > "$RESULTS"
run_load() {  # name method connections wrk-prefix...
  local name=$1 method=$2 connections=$3; shift 3
  local file=req/get.txt
  [[ $method == POST ]] && file=req/post.txt
  local out
  out=$("$@" wrk -t "$WRK_THREADS" -c "$connections" -d "${DURATION}s" --timeout 5s -s "$ROOT/bench/ocsp.lua" \
    "http://127.0.0.1:$PORT/" -- "${method,,}" "$WORK/$file" / 2>&1) || true
  echo "$out" > "logs/wrk-$MODE-$name-$method-$connections.log"
  local result
  result=$(grep '^RESULT' <<<"$out" || echo "RESULT 0 1 0 0 0 0")
  # mode server method connections requests duration_us errors p50_us p99_us non2xx
  echo -e "$MODE\t$name\t$method\t$connections\t${result#RESULT }" | tr ' ' '\t' >> "$RESULTS"
}

SERVERS=(ours nginx cfssl openssl)
if [[ $SCALE == 1 ]]; then SERVERS=(ours nginx); fi
declare -A RSS CHECKED
IFS=, read -ra MODE_LIST <<<"$MODES"
IFS=, read -ra CONNECTION_LIST <<<"$CONNECTIONS"
for MODE in "${MODE_LIST[@]}"; do
  if [[ $MODE == pinned ]]; then
    SERVER_PREFIX=(taskset -c 0); WRK_PREFIX=(taskset -c 1); WRK_THREADS=1
    OURS_WORKERS=1; OURS_SIGNERS=1; NGINX_WORKERS=1
  else
    SERVER_PREFIX=(); WRK_PREFIX=(); WRK_THREADS=2
    OURS_WORKERS=$CORES; OURS_SIGNERS=$CORES; NGINX_WORKERS=$CORES
  fi
  for name in "${SERVERS[@]}"; do
    log "$MODE: $name"
    if ! start_server "$name" "${SERVER_PREFIX[@]}"; then
      log "$name did not start (logs/$name-$MODE.log)"
      CHECKED[$MODE/$name/GET]="did not start"; CHECKED[$MODE/$name/POST]="did not start"; stop_server; continue
    fi
    for method in GET POST; do
      if ! check_answers "$name" "$method"; then
        CHECKED[$MODE/$name/$method]="wrong answers to sampled $method requests: not measured"
        continue
      fi
      CHECKED[$MODE/$name/$method]=ok
      for connections in "${CONNECTION_LIST[@]}"; do
        run_load "$name" "$method" "$connections" "${WRK_PREFIX[@]}"
      done
    done
    RSS[$MODE/$name]=$(peak_rss "$SERVER_PID")
    stop_server
  done
done

# ---------------------------------------------------------------------------------------------------------
echo
if [[ $SCALE == 1 ]]; then
  echo "OCSP responders under wrk, keep-alive, $SERIALS serials, ${DURATION}s per run, $CORES cores, store of $SCALE_ENTRIES entries"
else
  echo "OCSP responders under wrk, keep-alive, $SERIALS serials (10% revoked), ${DURATION}s per run, $CORES cores"
fi
printf '%-9s %-15s %-5s %5s %11s %9s %9s %9s %8s %10s\n' mode server method conns "requests/s" "p50 ms" "p99 ms" \
  "vs nginx" errors "peak RSS"
for MODE in "${MODE_LIST[@]}"; do
  for name in "${SERVERS[@]}"; do
    label=$name
    case $name in ours) label=ocsp-responder ;; cfssl) label="cfssl ocspserve" ;; openssl) label="openssl ocsp" ;; esac
    for method in GET POST; do
      if [[ ${CHECKED[$MODE/$name/$method]} != ok ]]; then
        printf '%-9s %-15s %-5s %s\n' "$MODE" "$label" "$method" "${CHECKED[$MODE/$name/$method]}"
        continue
      fi
      for connections in "${CONNECTION_LIST[@]}"; do
        row=$(awk -F'\t' -v m="$MODE" -v s="$name" -v me="$method" -v c="$connections" \
          '$1==m && $2==s && $3==me && $4==c' "$RESULTS")
        ref=$(awk -F'\t' -v m="$MODE" -v me="$method" -v c="$connections" \
          '$1==m && $2=="nginx" && $3==me && $4==c {print $5 / ($6 / 1e6)}' "$RESULTS")
        awk -F'\t' -v ref="${ref:-0}" -v rss="${RSS[$MODE/$name]:-0}" -v label="$label" '{
          rps = $6 > 0 ? $5 / ($6 / 1e6) : 0
          ratio = ref > 0 ? sprintf("%.3f", rps / ref) : "-"
          note = $5 == 0 ? "  (no answer within the run)" : ""
          printf "%-9s %-15s %-5s %5s %11.0f %9.2f %9.2f %9s %8d %7.1f MiB%s\n", $1, label, $3, $4, rps, $8 / 1000, $9 / 1000,
            ratio, $7 + $10, rss / 1024, note
        }' <<<"$row"
      done
    done
  done
done
echo "errors: connect, read, write and timeout errors plus non-2xx answers, as wrk counts them"
