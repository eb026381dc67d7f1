#!/usr/bin/env bash
# Fails unless `systemd-analyze security --offline=true` rates the unit's exposure at most MAX (0.0 best, 10.0
# worst). Prints the score and every check that still costs exposure, so a regression shows what changed.
# Usage: unit-security.sh SYSTEMD_ANALYZE UNIT_FILE MAX
set -euo pipefail
analyze=$1 unit=$2 max=$3
[[ -x "$analyze" ]] || { echo "FAIL: systemd-analyze not found ($analyze); run scripts/setup.sh" >&2; exit 1; }
set +e
out=$("$analyze" security --offline=true --no-pager "$unit" 2>&1)
set -e
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out" | tail -n1)
if [[ -z "$score" ]]; then
  echo "$out"
  echo "FAIL: no exposure level in the output" >&2
  exit 1
fi
grep -E '^✗' <<<"$out" || true
echo "exposure of $(basename "$unit"): $score (at most $max)"
awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }' || { echo "FAIL: exposure $score > $max" >&2; exit 1; }
