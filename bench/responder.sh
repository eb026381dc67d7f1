#!/usr/bin/env bash
# The responder benchmark in one command (bench/README.md, "Responder benchmark", explains it).
#
# Four servers answer the same OCSP requests, loaded by wrk over keep-alive:
#   ocsp-responder   this project (workers and signer threads sized to the cores it may use; by default workers
#                    pinned one per core, each new connection to the worker on the core that processed its
#                    SYN); unpinned also a second time as "ours hash", with connection_steering = "hash"
#   nginx            one response's bytes as a static file, for every request: the speed-of-light reference
#   cfssl ocspserve  presigned responses from a file (Debian golang-cfssl); the file holds our responder's
#                    answers for every serial
#   openssl ocsp     the openssl CLI as a responder (index.txt), signing every request; one request per
#                    connection (it answers HTTP/1.0 and closes), one process per core it may use (-multi),
#                    and started afresh for every check and every run: OpenSSL 3.0's responder spins for ever
#                    on a connection that closes before sending a request (bench/README.md says more)
# with GET and POST (bench/ocsp.lua), distinct serials (default 10,000; every tenth revoked), 16 and 64
# connections; pinned (server on core 0, wrk on core 1, taskset) and unpinned. Before a server's numbers are
# trusted, a sample of its answers (GET and POST) is checked with `openssl ocsp` (signature and status); a
# server that fails the check gets no numbers, and its rows say why. Then our responder and nginx get a
# constant-rate load (ocsp-load, GET) at half our responder's peak GET rate, for p50/p99 latency without
# coordinated omission (Debian has no wrk2).
# Prints one table: requests/s, p50/p99 latency, ratio to nginx, errors, the server's CPU time per request
# (utime+stime of all its threads and processes, /proc/PID/stat) and its ratio to nginx's, peak RSS; then
# the half-load latencies and each target with the figures it is judged on.
#
# --scale: our responder and nginx against a store of 100 million revoked entries (two CAs of 50M each,
# crl-gen; about 10 GB of disk while it runs) and, in the same run, our responder against a store of 10,000
# entries (crl-gen, the first CA), for the ratio of the two throughputs.
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
SERVER_FILTER=""
ROUNDS=1

usage() {
  cat <<EOF
usage: bench/responder.sh [options]
  --serials N        distinct serials requested (default $SERIALS; every tenth is revoked)
  --duration S       seconds per wrk run (default $DURATION)
  --connections L    comma-separated connection counts (default $CONNECTIONS)
  --modes L          pinned, unpinned or both (default $MODES)
  --servers L        comma-separated subset of ours,nginx,cfssl,openssl (default all; ratios need nginx)
  --rounds R         run every server R times in turn per mode (default $ROUNDS); each row shows the best
                     of its R runs, so a round slowed by other work on the machine does not decide a ratio
  --quick            --duration 3 --serials 2000
  --scale            a store of $SCALE_ENTRIES revoked entries (crl-gen) beside one of 10,000, our responder
                     and nginx only
  --scale-entries N  the large store's entries with --scale (default $SCALE_ENTRIES; two CAs of N/2)
  --work-dir DIR     PKI, requests, stores, logs (default bench/out/responder)
  --bin-dir DIR      use ocsp-responder, ocspctl, ocsp-requests, ocsp-load (and crl-gen) from DIR; skip the build
EOF
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --serials) SERIALS=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --connections) CONNECTIONS=${2:?}; shift 2 ;;
    --modes) MODES=${2:?}; shift 2 ;;
    --servers) SERVER_FILTER=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --quick) DURATION=3; SERIALS=2000; shift ;;
    --scale) SCALE=1; shift ;;
    --scale-entries) SCALE_ENTRIES=${2:?}; shift 2 ;;
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

"$ROOT/scripts/setup.sh" >&2  # wrk, nginx, golang-cfssl, util-linux (taskset), curl, openssl, iproute2 (ss), procps
for tool in wrk nginx cfssl taskset curl openssl ss pgrep; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done
if [[ $BUILD == 1 ]]; then
  log "building the release preset"
  targets=(ocsp-responder ocspctl ocsp-requests ocsp-load stall-probe)
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
# Servers. Each gets a port nothing else listens on: our responder binds with SO_REUSEPORT, so a port shared
# with another engineer's responder would silently split the connections between the two (and theirs answers
# our CA's requests with `unauthorized`).
port_free() { [[ -z $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
NEXT_PORT=18080
pick_port() {  # variable-name -> sets it to a free port, unless it already holds one
  local -n port_var=$1
  [[ -n ${port_var:-} ]] && port_free "$port_var" && return 0
  while ! port_free "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
  port_var=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
}
PORT_OURS=""; PORT_NGINX=""; PORT_CFSSL=""; PORT_OPENSSL=""
pick_port PORT_OURS; pick_port PORT_NGINX; pick_port PORT_CFSSL; pick_port PORT_OPENSSL
# Stops a server we started, by its id, never waiting for ever. `openssl ocsp -multi` makes itself the leader
# of its own process group, and its parent does not leave on SIGTERM while its children live (it sits in a
# restarted waitpid()), so that group is signalled as a whole; any other server has no group of its own id.
stop_pid() {
  local pid=$1 _
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do  # gone, or a zombie waiting for our wait
    [[ $(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) =~ ^Z?$ ]] && break
    sleep 0.05
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Reaped: its id may soon be someone else's, so it leaves the list the exit trap stops.
  local kept=() other
  for other in "${PIDS[@]}"; do [[ $other == "$pid" ]] || kept+=("$other"); done
  PIDS=("${kept[@]}")
}
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT

wait_port() {  # port -> waits until it answers HTTP at all
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.05
  done
  return 1
}

tree_pids() {  # pid -> the process and its descendants (nginx's workers, openssl ocsp -multi's children)
  local child
  echo "$1"
  for child in $(pgrep -P "$1" || true); do tree_pids "$child"; done
}

# Peak RSS in KiB of a process and its children (VmHWM).
peak_rss() {
  local total=0 pid
  for pid in $(tree_pids "$1"); do
    total=$((total + $(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# CPU time in clock ticks of a process and its descendants, all threads: utime + stime, plus cutime + cstime
# so that a child reaped between two readings still counts. Read before and after each run.
cpu_ticks() {
  local total=0 pid ticks
  for pid in $(tree_pids "$1"); do
    # Fields after "pid (comm) ": state is 1, utime 12, stime 13, cutime 14, cstime 15.
    ticks=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}')
    total=$((total + ${ticks:-0}))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

write_ours_config() {  # workers signer_threads store presign(on|keep-only|off) [connection_steering]
  cat > ours.toml <<EOF
[responder]
listen = "127.0.0.1:$PORT_OURS"
workers = $1
signer_threads = $2
connection_steering = "${5:-cpu}"
max_pending_signatures = 4096
max_connections_per_address = 1000
[store]
path = "$3"
map_size_mib = 65536
[metrics]
listen = ""
[import]
archive_directory = "off"
EOF
  case $4 in
    on) ;;  # the defaults: revoked serials presigned in the background, on-demand answers kept
    keep-only)  # on-demand answers kept, nothing presigned (with 100M revoked entries it would sign for hours)
      printf '[presign]\nhash_algorithms = []\nscan_interval_seconds = 86400\n' >> ours.toml ;;
    off)  # no presigner thread walking 100M entries beside the measured load; stored answers are still served
      printf '[presign]\nenabled = false\n' >> ours.toml ;;
  esac
  cat >> ours.toml <<EOF
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

# Stores. Normal: the CRL from index.txt. Scale: 100M entries (two CAs of 50M each) and, for the same run's
# baseline, 10,000 entries of the first CA; both from crl-gen, so both are shaped alike.
STORE=$WORK/store
SMALL_STORE=$WORK/store-10k
PRESIGN=on
if [[ $SCALE == 1 ]]; then
  PRESIGN=off
  write_ours_config 1 1 "$SMALL_STORE" off
  "$BIN_DIR/crl-gen" --ca-cert pki/ca.pem --ca-key pki/ca.key -n 10000 -o pki/small.der >&2
  "$BIN_DIR/ocspctl" --config ours.toml import --issuer pki/ca.pem pki/small.der >&2
  write_ours_config 1 1 "$STORE" off
  for prefix in "" second-; do
    log "scale: generating a CRL of $((SCALE_ENTRIES / 2)) entries for the ${prefix:-first }CA (crl-gen), importing it"
    started=$(date +%s)
    "$BIN_DIR/crl-gen" --ca-cert "pki/${prefix}ca.pem" --ca-key "pki/${prefix}ca.key" -n $((SCALE_ENTRIES / 2)) \
      -o "pki/${prefix}scale.der" >&2
    log "crl-gen took $(( $(date +%s) - started )) s"
    started=$(date +%s)
    "$BIN_DIR/ocspctl" --config ours.toml import --issuer "pki/${prefix}ca.pem" "pki/${prefix}scale.der" >&2
    log "import took $(( $(date +%s) - started )) s"
    rm -f "pki/${prefix}scale.der"
  done
  log "store: $(du -sh "$STORE" | cut -f1), 10k store: $(du -sh "$SMALL_STORE" | cut -f1)"
else
  write_ours_config 1 1 "$STORE" on
  "$BIN_DIR/ocspctl" --config ours.toml import --issuer pki/ca.pem pki/crl.der >&2
fi

# Our responder's answer for every serial: asking each once stores it (good answers are kept when signed on
# demand, revoked ones presigned or kept), so every measured request is a stored response; and the bytes
# are cfssl's file and nginx's static response.
prefetch_responses() {  # store out-dir
  pick_port PORT_OURS
  write_ours_config 2 2 "$1" "$([[ $SCALE == 1 ]] && echo keep-only || echo on)"
  "$BIN_DIR/ocsp-responder" --config ours.toml > logs/prefetch.log 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_port "$PORT_OURS" || die "ocsp-responder did not start: $(cat logs/prefetch.log)"
  mkdir -p "$2"
  awk -v port="$PORT_OURS" -v dir="$2" '{printf "url = \"http://127.0.0.1:%s/%s\"\noutput = \"%s/%d.der\"\n", port, $1, dir, NR}' \
    req/get.txt > req/prefetch.curl
  curl -s -K req/prefetch.curl
  stop_pid "$pid"
  # Anything the presigner would still sign is signed now, not in the measured runs (normal mode: the
  # revoked serials; with 100M revoked entries that would be hours, so scale mode presigns nothing).
  if [[ $SCALE == 0 ]]; then "$BIN_DIR/ocspctl" --config ours.toml presign >&2; fi
  local n bad=0
  for n in $(seq 1 "$SERIALS"); do
    # An exception answer is 5 octets (30 03 0a 01 xx); a stored response is over a kilobyte.
    [[ $(stat -c %s "$2/$n.der" 2>/dev/null || echo 0) -gt 100 ]] || bad=$((bad + 1))
  done
  [[ $bad == 0 ]] || die "$bad of $SERIALS prefetched answers from $1 are not signed responses ($2)"
}
if [[ $SCALE == 1 ]]; then
  log "fetching $SERIALS responses from the 10k-entry store (stores them)"
  prefetch_responses "$SMALL_STORE" "$WORK/resp-10k"
fi
log "fetching $SERIALS responses from ocsp-responder (stores them; cfssl's file and nginx's static response)"
prefetch_responses "$STORE" "$WORK/resp"
: > cfssl-responses.b64
for n in $(seq 1 "$SERIALS"); do base64 -w0 "resp/$n.der" >> cfssl-responses.b64; echo >> cfssl-responses.b64; done
cp resp/1.der nginx/html/response.der

start_server() {  # name taskset-prefix... -> sets SERVER_PID
  local name=$1; shift
  # Checked again at each start: others' servers come and go while this runs.
  pick_port PORT_OURS; pick_port PORT_NGINX; pick_port PORT_CFSSL; pick_port PORT_OPENSSL
  case $name in
    ours|ours10k|ourshash)
      local store=$STORE steering=cpu
      [[ $name == ours10k ]] && store=$SMALL_STORE
      [[ $name == ourshash ]] && steering=hash
      write_ours_config "$OURS_WORKERS" "$OURS_SIGNERS" "$store" "$PRESIGN" "$steering"
      "$@" "$BIN_DIR/ocsp-responder" --config ours.toml > "logs/$name-$MODE.log" 2>&1 &
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
      # As many processes as the cores it may use, like the others' workers: -multi forks them (the parent
      # only respawns); pinned, one process. -port listens on every address, so the port is checked free.
      local multi=()
      [[ $OPENSSL_PROCESSES -gt 1 ]] && multi=(-multi "$OPENSSL_PROCESSES")
      "$@" openssl ocsp -index pki/index.txt -port "$PORT_OPENSSL" -rsigner pki/responder.pem \
        -rkey pki/responder.key -CA pki/ca.pem -nmin 60 -ignore_err "${multi[@]}" >> "logs/openssl-$MODE.log" 2>&1 &
      SERVER_PID=$!; PORT=$PORT_OPENSSL ;;
  esac
  PIDS+=("$SERVER_PID")
  # wait_port's own request is answered; it is not the empty connection that wedges openssl ocsp.
  wait_port "$PORT" || return 1
}

stop_server() {
  stop_pid "$SERVER_PID"
}

# openssl ocsp is started afresh before each check and each run: when wrk ends a run it closes connections
# it had opened but not yet written to, and OpenSSL 3.0's responder then loops on read() = 0 for ever
# (http_server_get_asn1_req returns "no request" but keeps the connection, and the loop asks it again).
restart_if_wedging() {  # name
  [[ $1 == openssl ]] || return 0
  stop_server
  start_server openssl "${SERVER_PREFIX[@]}"
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
RATE_RESULTS=$WORK/rate.tsv
: > "$RESULTS"; : > "$RATE_RESULTS"
run_load() {  # name method connections wrk-prefix...
  local name=$1 method=$2 connections=$3; shift 3
  local file=req/get.txt
  [[ $method == POST ]] && file=req/post.txt
  local out before after
  before=$(cpu_ticks "$SERVER_PID")
  out=$("$@" wrk -t "$WRK_THREADS" -c "$connections" -d "${DURATION}s" --timeout 5s -s "$ROOT/bench/ocsp.lua" \
    "http://127.0.0.1:$PORT/" -- "${method,,}" "$WORK/$file" / 2>&1) || true
  after=$(cpu_ticks "$SERVER_PID")
  echo "$out" > "logs/wrk-$MODE-$name-$method-$connections.log"
  local result
  result=$(grep '^RESULT' <<<"$out" || echo "RESULT 0 1 0 0 0 0")
  # mode server method connections requests duration_us errors p50_us p99_us non2xx cpu_us
  echo -e "$MODE\t$name\t$method\t$connections\t${result#RESULT }\t$(( (after - before) * 1000000 / CLK_TCK ))" |
    tr ' ' '\t' >> "$RESULTS"
}

# Constant rate, GET, 16 connections, at half our responder's best GET rate of this mode (each server gets
# the same rate; the server's own best when ours was not measured): p50 and p99 measured from each request's
# scheduled time (ocsp-load, one epoll loop per thread, as many threads as wrk, each connecting its own share;
# wrk2 is not in Debian). One rate for both servers, so that their latencies answer the same question.
# The client's threads ask for the 0.1 ms slice our workers ask for (--scheduling short-slice): with the default
# slice a client thread woken for its next send waits out whatever runs on its core (kdamond here takes ~1 ms at
# a time, ~5 times a second), and that wait, counted from the scheduled send, lands in the server's p99. Ours is
# also run with a client at the default slice, shown beside it and not judged.
run_rate() {  # name scheduling load-prefix...
  local name=$1 scheduling=$2; shift 2
  local peak rate out summary
  best_get() {
    awk -F'\t' -v m="$MODE" -v s="$1" '$1==m && $2==s && $3=="GET" && $6>0 {r = $5 / ($6 / 1e6); if (r > best) best = r}
      END {printf "%d", best}' "$RESULTS"
  }
  peak=$(best_get ours)
  [[ $peak -gt 0 ]] || peak=$(best_get "$name")
  [[ $peak -gt 0 ]] || return 0
  rate=$((peak / 2))
  out=$("$@" "$BIN_DIR/ocsp-load" --port "$PORT" --issuer pki/ca.pem --serials "$SERIALS" --serial-base "$FIRST_SERIAL" \
    --zipf 0 --get --rate "$rate" --duration "$DURATION" --window "$DURATION" --connections 16 \
    --threads "$WRK_THREADS" --scheduling "$scheduling" 2>&1) || true
  echo "$out" > "logs/rate-$MODE-$name-$scheduling.log"
  summary=$(grep '^summary' <<<"$out" || true)
  # mode server rate achieved_rps p50_ms p99_ms errors other_status scheduling (as asked; the log says if refused)
  awk -v m="$MODE" -v s="$name" -v rate="$rate" -v sched="$scheduling" '{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", m, s, rate, v["rps"], v["p50_ms"], v["p99_ms"], v["errors"], v["other_status"],
      v["scheduling"] == "" ? sched : v["scheduling"]
  }' <<<"${summary:-summary}" >> "$RATE_RESULTS"
}

SERVERS=(ours ourshash nginx cfssl openssl)
if [[ $SCALE == 1 ]]; then SERVERS=(ours ours10k nginx); fi
if [[ -n $SERVER_FILTER ]]; then
  kept=()
  for name in "${SERVERS[@]}"; do
    base=${name%10k}; base=${base%hash}
    [[ ,$SERVER_FILTER, == *,$base,* ]] && kept+=("$name")
  done
  SERVERS=("${kept[@]}")
fi
declare -A RSS CHECKED
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)  # other work on the machine shows in the figures, p99 above all
# What the machine itself takes from a running thread (other tasks, interrupts, the hypervisor): a floor under
# every server's p99, measured before and after the runs.
machine_stalls() {
  [[ -x $BIN_DIR/stall-probe ]] || { echo "(no stall-probe in $BIN_DIR)"; return; }
  "$BIN_DIR/stall-probe" --seconds 5 2>&1 | awk '
    /^cpu=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "%scpu%s %s%% lost in %s stalls over %s us (%s over 1 ms), longest %s ms", sep, v["cpu"], v["lost_pct"],
        v["stalls"], v["threshold_us"], v["stalls_over_1ms"], v["longest_ms"]; sep = "; " }
    !/^cpu=/ { printf "%s%s", sep, $0; sep = "; " }'
}
STALLS_BEFORE=$(machine_stalls)
IFS=, read -ra MODE_LIST <<<"$MODES"
IFS=, read -ra CONNECTION_LIST <<<"$CONNECTIONS"
for MODE in "${MODE_LIST[@]}"; do
  if [[ $MODE == pinned ]]; then
    SERVER_PREFIX=(taskset -c 0); WRK_PREFIX=(taskset -c 1); WRK_THREADS=1
    OURS_WORKERS=1; OURS_SIGNERS=1; NGINX_WORKERS=1; OPENSSL_PROCESSES=1
  else
    SERVER_PREFIX=(); WRK_PREFIX=(); WRK_THREADS=2
    OURS_WORKERS=$CORES; OURS_SIGNERS=$CORES; NGINX_WORKERS=$CORES; OPENSSL_PROCESSES=$CORES
  fi
  for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  for name in "${SERVERS[@]}"; do
    # Pinned, ours has one worker on one CPU: there is nothing to steer.
    [[ $MODE == pinned && $name == ourshash ]] && continue
    log "$MODE: $name (round $ROUND of $ROUNDS)"
    if ! start_server "$name" "${SERVER_PREFIX[@]}"; then
      log "$name did not start (logs/$name-$MODE.log)"
      CHECKED[$MODE/$name/GET]="did not start"; CHECKED[$MODE/$name/POST]="did not start"; stop_server; continue
    fi
    for method in GET POST; do
      restart_if_wedging "$name" || true
      if ! check_answers "$name" "$method"; then
        CHECKED[$MODE/$name/$method]="wrong answers to sampled $method requests: not measured"
        continue
      fi
      CHECKED[$MODE/$name/$method]=ok
      for connections in "${CONNECTION_LIST[@]}"; do
        restart_if_wedging "$name" || true
        run_load "$name" "$method" "$connections" "${WRK_PREFIX[@]}"
      done
    done
    if [[ $name != cfssl && $name != openssl && ${CHECKED[$MODE/$name/GET]} == ok ]]; then
      run_rate "$name" short-slice "${WRK_PREFIX[@]}"
      [[ $name == ours ]] && run_rate "$name" normal "${WRK_PREFIX[@]}"
    fi
    RSS[$MODE/$name]=$(peak_rss "$SERVER_PID")
    stop_server
  done
  done
done

# ---------------------------------------------------------------------------------------------------------
echo
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
STALLS_AFTER=$(machine_stalls)
if [[ $SCALE == 1 ]]; then
  echo "OCSP responders under wrk, keep-alive, $SERIALS serials, ${DURATION}s per run, $CORES cores, stores of 10k and $SCALE_ENTRIES entries"
else
  echo "OCSP responders under wrk, keep-alive, $SERIALS serials (10% revoked), ${DURATION}s per run, $CORES cores"
fi
label_of() {
  case $1 in
    ours) if [[ $SCALE == 1 ]]; then echo "ours $((SCALE_ENTRIES / 1000000))M"; else echo ocsp-responder; fi ;;
    ours10k) echo "ours 10k" ;;
    ourshash) echo "ours hash" ;;
    cfssl) echo "cfssl ocspserve" ;;
    openssl) echo "openssl ocsp" ;;
    *) echo "$1" ;;
  esac
}
echo "load average (1, 5, 15 min) before the runs: $LOAD_BEFORE; after: $LOAD_AFTER"
echo "machine stalls (stall-probe: a thread spinning on each core for 5 s) before the runs: $STALLS_BEFORE"
echo "  after: $STALLS_AFTER"
[[ $ROUNDS -gt 1 ]] && echo "each row: the best of $ROUNDS runs of that server (the servers took turns, round by round)"
printf '%-9s %-15s %-5s %5s %11s %8s %8s %8s %6s %8s %8s %6s %9s\n' mode server method conns "requests/s" "p50 ms" \
  "p99 ms" "vs nginx" errors "CPU us" "CPU vs" "server" "peak RSS"
printf '%-9s %-15s %-5s %5s %11s %8s %8s %8s %6s %8s %8s %6s %9s\n' "" "" "" "" "" "" "" "" "" "/req" "nginx" "CPU %" ""
for MODE in "${MODE_LIST[@]}"; do
  for name in "${SERVERS[@]}"; do
    [[ $MODE == pinned && $name == ourshash ]] && continue
    label=$(label_of "$name")
    for method in GET POST; do
      if [[ ${CHECKED[$MODE/$name/$method]} != ok ]]; then
        printf '%-9s %-15s %-5s %s\n' "$MODE" "$label" "$method" "${CHECKED[$MODE/$name/$method]}"
        continue
      fi
      for connections in "${CONNECTION_LIST[@]}"; do
        awk -F'\t' -v m="$MODE" -v s="$name" -v me="$method" -v c="$connections" -v rss="${RSS[$MODE/$name]:-0}" \
          -v label="$label" '
          $1==m && $3==me && $4==c && $2=="nginx" && $5 > 0 {
            r = $5 / ($6 / 1e6); if (r > ref) { ref = r; refcpu = $11 / $5 }
          }
          $1==m && $3==me && $4==c && $2==s {
            r = $6 > 0 ? $5 / ($6 / 1e6) : 0; if (row == "" || r > best) { best = r; row = $0 }
          }
          END {
            split(row, f, "\t")
            rps = f[6] > 0 ? f[5] / (f[6] / 1e6) : 0
            cpu = f[5] > 0 ? f[11] / f[5] : 0
            ratio = ref > 0 ? sprintf("%.3f", rps / ref) : "-"
            cpuratio = refcpu > 0 && f[5] > 0 ? sprintf("%.2f", cpu / refcpu) : "-"
            share = f[6] > 0 ? 100 * f[11] / f[6] : 0
            note = f[5] == 0 ? "  (no answer within the run)" : ""
            printf "%-9s %-15s %-5s %5s %11.0f %8.2f %8.2f %8s %6d %8.1f %8s %6.0f %5.1f MiB%s\n", f[1], label, f[3], f[4],
              rps, f[8] / 1000, f[9] / 1000, ratio, f[7] + f[10], cpu, cpuratio, share, rss / 1024, note
          }' "$RESULTS"
      done
    done
  done
done
echo "errors: connect, read, write and timeout errors plus non-2xx answers, as wrk counts them"
echo "CPU us/req: the server's utime+stime (all threads and processes) over the run / requests answered"
echo "server CPU %: that CPU time / the run's wall time; pinned, well under 100 means the server was not the limit"
echo "  (wrk on core 1, or other work on the machine, was)"
if [[ -s $RATE_RESULTS ]]; then
  echo
  echo "Constant rate (ocsp-load, GET, 16 connections, as many threads as wrk, ${DURATION}s): half of our responder's best GET requests/s above"
  printf '%-9s %-15s %10s %10s %8s %8s %7s  %s\n' mode server "rate/s" "achieved" "p50 ms" "p99 ms" errors "client slice"
  while IFS=$'\t' read -r m s rate achieved p50 p99 errors other sched; do
    printf '%-9s %-15s %10s %10s %8s %8s %7s  %s\n' "$m" "$(label_of "$s")" "$rate" "$achieved" "$p50" "$p99" \
      "$((${errors:-0} + ${other:-0}))" "$([[ $sched == short-slice ]] && echo "0.1 ms" || echo "default ($sched)")"
  done < "$RATE_RESULTS"
fi

# The targets of issue 5, each with the figures it is judged on (worst case over connection counts).
echo
echo "Targets"
awk -F'\t' -v scale="$SCALE" '
  FILENAME == ARGV[1] {
    if ($5 <= 0) next
    key = $1 SUBSEP $3 SUBSEP $4
    r = $5 / ($6 / 1e6)
    if (!(($2, key) in rps) || r > rps[$2, key]) { rps[$2, key] = r; cpu[$2, key] = $11 / $5 }
    keys[key] = 1; modes[$1] = 1
    if ($2 == "ourshash") have_hash = 1
    next
  }
  {  # every round counts: the worst p99 and the best; the runs with a default-slice client are shown apart
    if ($9 == "normal") $2 = $2 "/normal"
    if ($2 == "ours" || $2 == "ourshash" || $2 == "ours/normal") servers_p99[$2] = 1
    if (!(($1, $2) in p99) || $6 + 0 > p99[$1, $2] + 0) p99[$1, $2] = $6
    if (!(($1, $2) in p99best) || $6 + 0 < p99best[$1, $2] + 0) p99best[$1, $2] = $6
    runs[$1, $2]++
  }
  function worst(a, b, lo,    k, r, w, have) {
    # smallest (lo) or largest ratio a/b over the shared keys; "-" without any
    have = 0
    for (k in keys) if ((a, k) in rps && (b, k) in rps) {
      r = (lo == "cpu") ? cpu[a, k] / cpu[b, k] : rps[a, k] / rps[b, k]
      if (!have || (lo == "min" && r < w) || (lo != "min" && r > w)) w = r
      have = 1
    }
    return have ? sprintf("%.2f", w) : "-"
  }
  END {
    if (scale == 1) {
      printf "  100M-entry store vs 10k-entry store, requests/s (target >= 0.80): worst %s\n", worst("ours", "ours10k", "min")
      printf "  ours 100M vs nginx (GET and POST): worst %s\n", worst("ours", "nginx", "min")
    } else {
      printf "  GET and POST vs nginx (target >= 1.00): worst %s\n", worst("ours", "nginx", "min")
      printf "  CPU per request vs nginx (target <= 1.00): worst %s\n", worst("ours", "nginx", "cpu")
      if (have_hash) {
        printf "  with connection_steering = \"hash\", unpinned: GET and POST vs nginx %s, CPU per request %s\n",
          worst("ourshash", "nginx", "min"), worst("ourshash", "nginx", "cpu")
      }
      printf "  vs cfssl ocspserve, POST (target >= 5): worst %s\n", worst("ours", "cfssl", "min")
      printf "  vs openssl ocsp (target >= 8): worst %s\n", worst("ours", "openssl", "min")
      for (m in modes) for (k in keys) {
        split(k, part, SUBSEP)
        if (part[1] == m && part[2] == "POST" && ("ours", k) in rps && ("ours", m SUBSEP "GET" SUBSEP part[3]) in rps) {
          r = rps["ours", k] / rps["ours", m SUBSEP "GET" SUBSEP part[3]]
          if (!(m in pg) || r < pg[m]) pg[m] = r
        }
      }
      for (m in pg) printf "  POST vs GET, %s (target >= 0.90): worst %.2f\n", m, pg[m]
    }
    for (m in modes) for (s in servers_p99) if ((m, s) in p99) {
      if (s == "ours/normal") printf "  p99 at half the peak, %s, client at the default slice (shown, not judged): %s ms", m, p99[m, s]
      else printf "  p99 at half the peak, %s%s (target < 1 ms): %s ms", m, s == "ourshash" ? ", hash" : "", p99[m, s]
      if (runs[m, s] > 1) printf " (the worst of %d runs; the best %s ms)", runs[m, s], p99best[m, s]
      printf "\n"
    }
  }' "$RESULTS" "$RATE_RESULTS"
