#!/usr/bin/env bash
# Soak run: a real ocsp-responder under steady load for a bounded time (default 600 s) with a CRL import every
# minute that alternates two CRLs (200 serials change status each time). Checks: no error beyond tryLater,
# every answer matches a CRL that was current at some moment while the request was in flight, a sample of the
# signatures verifies with `openssl ocsp`, and the responder's heap (RssAnon) grows less than 5% from the end of
# the warm-up (the first minute, or a tenth of a shorter run) to the end, while its file pages (RssFile: the
# store, which LMDB maps whole) stay within the store file's size (sampled from /proc/PID/status every 5 s).
# Prints one table (bench/README.md, "Soak"); the work is done by bench/ocsp_load.py.
#
# usage: bench/soak.sh [SECONDS] [--import-every S] [--clients N] [--rate R] [--entries N]
#                      [--workers N] [--signer-threads N] [--bin-dir DIR] [--work DIR]
# Exit status: 0 every check held, 1 one failed, 2 set-up failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=""
WORK=$ROOT/bench/out/soak
SECONDS_ARG=600
args=()
if [[ ${1:-} =~ ^[0-9]+$ ]]; then SECONDS_ARG=$1; shift; fi
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ -z $BIN_DIR ]]; then
  (cd "$ROOT" && cmake --preset release >/dev/null && nice cmake --build --preset release -j2 --target ocsp-responder ocspctl) >&2
  BIN_DIR=$ROOT/build/release/bin
fi
"$ROOT/scripts/setup.sh" python3 >&2  # Debian's python3; its standard library only
exec python3 "$ROOT/bench/ocsp_load.py" soak --seconds "$SECONDS_ARG" --bin-dir "$BIN_DIR" --work "$WORK" "${args[@]}"
