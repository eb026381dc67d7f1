#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/) in build/fuzz and runs each for SECONDS (default 30), niced, printing the
# executions and coverage of each. Exits non-zero if any target crashes, hangs, or finds a disagreement with
# OpenSSL; the input that did it is saved under build/fuzz/artifacts/<target>/ and named in the output.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET ...]        (targets: crl_parser_fuzzer ocsp_request_fuzzer config_fuzzer
#                                                       http_fuzzer)
# environment: FUZZ_SEED (default 1), FUZZ_JOBS (build parallelism, default 2), FUZZ_BUILD_DIR (default build/fuzz),
#              FUZZ_ENGINE=standalone to force the g++ engine even where clang-19 is installed,
#              FUZZ_RUNS=N to run N executions per target instead of SECONDS (reproducible: CI uses it),
#              FUZZ_RUNS_<target>=N to give one target its own number of executions,
#              CRL_FUZZ_TOLERATE (known CRL-parser disagreements to count instead of failing on; docs/fuzzing.md)
#
# Engine: libFuzzer when clang++ can compile the project (it needs libstdc++'s <expected>, i.e. clang >= 19);
# otherwise g++ with ASan + UBSan and fuzz/standalone_main.cpp, a coverage-guided driver with libFuzzer's
# command line. Debian 12 gets the second. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

seconds=${1:-30}
[[ $# -gt 0 ]] && shift
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(crl_parser_fuzzer ocsp_request_fuzzer config_fuzzer http_fuzzer)
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
  echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2
  exit 2
fi
seed=${FUZZ_SEED:-1}
jobs=${FUZZ_JOBS:-2}
build_dir=${FUZZ_BUILD_DIR:-$root/build/fuzz}

common_flags="-g -fno-omit-frame-pointer -fno-sanitize-recover=all"
# Debian 12's default clang (14) cannot compile libstdc++ 12's <expected>; clang-19 (in bookworm) can.
clang=""
for candidate in clang++-19 clang++; do
  if command -v "$candidate" >/dev/null &&
     echo $'#include <expected>\nstd::expected<int, int> e;' | "$candidate" -std=c++2b -x c++ -fsyntax-only - 2>/dev/null; then
    clang=$candidate
    break
  fi
done
if [[ -n "$clang" && "${FUZZ_ENGINE:-}" != standalone ]]; then
  engine=libfuzzer
  compiler=$clang
  flags="-fsanitize=fuzzer-no-link,address,undefined $common_flags"
else
  engine=standalone
  compiler=g++
  flags="-fsanitize=address,undefined $common_flags"
fi
echo "fuzz.sh: engine $engine ($compiler), ${seconds}s per target, seed $seed"

cmake -S "$root" -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$compiler" \
  -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DOCSP_FUZZ=ON -DOCSP_FUZZ_ENGINE="$engine" -DOCSP_BUILD_TESTS=OFF -DOCSP_WERROR=OFF >/dev/null
nice cmake --build "$build_dir" --target "${targets[@]}" -j "$jobs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for target in "${targets[@]}"; do
  work="$build_dir/corpus/$target"       # new inputs go here (the first directory)
  seeds="$root/fuzz/corpus/$target"      # committed seeds, never written
  known="$root/fuzz/crashes/$target"     # inputs of past findings: replayed first, every run (regressions)
  artifacts="$build_dir/artifacts/$target"
  log="$build_dir/$target.log"
  mkdir -p "$work" "$artifacts"
  # FUZZ_RUNS: a fixed number of executions instead of a time: with a fixed seed and a fresh corpus directory the
  # run is the same on every machine, which is what CI needs (a time budget explores more on a faster box).
  budget=(-max_total_time="$seconds")
  [[ -n "${FUZZ_RUNS:-}" ]] && budget=(-runs="$FUZZ_RUNS")
  # FUZZ_RUNS_<target> overrides FUZZ_RUNS for one target (http_fuzzer's executions each cost a TCP exchange).
  target_runs_var="FUZZ_RUNS_$target"
  [[ -n "${!target_runs_var:-}" ]] && budget=(-runs="${!target_runs_var}")
  args=("${budget[@]}" -seed="$seed" -timeout=25 -max_len=4096 -print_final_stats=1
        -artifact_prefix="$artifacts/")
  [[ -f "$root/fuzz/dict/$target.dict" ]] && args+=(-dict="$root/fuzz/dict/$target.dict")
  echo "=== $target"
  set +e
  corpora=("$work" "$seeds")
  [[ -d "$known" ]] && corpora+=("$known")
  nice "$build_dir/bin/$target" "${args[@]}" "${corpora[@]}" >"$log" 2>&1
  status=$?
  set -e
  # The last status line (libFuzzer and the standalone driver print the same form) and the run count.
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::new_units_added)' "$log" || true
  if [[ $status -ne 0 ]]; then
    failed+=("$target")
    echo "!!! $target failed (exit status $status); the end of $log:"
    tail -n 60 "$log"
    ls -1 "$artifacts" | sed "s|^|    artifact: $artifacts/|"
  fi
done

budget_text="${seconds}s"
[[ -n "${FUZZ_RUNS:-}" ]] && budget_text="$FUZZ_RUNS runs"
for target in "${targets[@]}"; do
  target_runs_var="FUZZ_RUNS_$target"
  [[ -n "${!target_runs_var:-}" ]] && budget_text+=" ($target: ${!target_runs_var} runs)"
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  echo "fuzz: $(( ${#targets[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
  exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran $budget_text each without a finding"
echo "fuzz: ${#targets[@]} passed, 0 failed"
