#!/usr/bin/env bash
# Abuse run: a real ocsp-responder under one attack at a time (idle connections, more connections than its
# open-file limit, slowloris, a connection flood, garbage bytes, oversize headers and bodies, pipelined
# floods, distinct unknown serials) while two legitimate keep-alive clients measure latency and success: one
# in Python that checks every answer, and ocsp-load paced at 1,000 requests/s, timed from each scheduled send.
# Prints one table (bench/README.md, "Abuse"). The work is done by bench/ocsp_load.py (Python standard
# library; the openssl CLI for the PKI and CRLs) and ocsp-load.
#
# usage: bench/abuse.sh [--seconds S] [--attacks a,b] [--unknown-serials N] [--fd-limit N] [--http-timeout S]
#                       [--attacker-addresses N] [--attacker-priority idle|normal] [--workers N]
#                       [--signer-threads N] [--paced-scheduling realtime|short-slice|normal] [--bin-dir DIR]
#                       [--work DIR]
# The legitimate client connects from 127.0.0.1, attackers from 127.0.0.2 on (N addresses, default 1; the
# fd-exhaustion attack takes as many as it needs to pass the open-file limit under the per-address cap).
# The attackers run at SCHED_IDLE by default (they stand for other machines' CPU; normal: they compete for
# these two cores with the responder and the legitimate client). For the same reason the paced client runs at
# real-time priority by default (SCHED_FIFO 1; normal when refused, and the table says which): a client woken
# for its next send would otherwise wait behind the responder's signing threads or a kernel thread on its
# core, and that wait, counted from the scheduled send, is the client's machine's, not the responder's. The
# table ends with the machine's own stalls per core (stall-probe), before and after the attacks.
# Default: each attack 10 s (idle ones: the idle timeout + 5 s; unknown serials: 60 s or 1,000,000 serials),
# the release build (built here unless --bin-dir), work in bench/out/abuse.
# Exit status: 0 the responder survived every attack and answered afterwards, 1 it did not, 2 set-up failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=""
WORK=$ROOT/bench/out/abuse
args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ -z $BIN_DIR ]]; then
  (cd "$ROOT" && cmake --preset release >/dev/null && nice cmake --build --preset release -j2 --target ocsp-responder ocspctl ocsp-load stall-probe) >&2
  BIN_DIR=$ROOT/build/release/bin
fi
"$ROOT/scripts/setup.sh" python3 >&2  # Debian's python3; its standard library only
exec python3 "$ROOT/bench/ocsp_load.py" abuse --bin-dir "$BIN_DIR" --work "$WORK" "${args[@]}"
