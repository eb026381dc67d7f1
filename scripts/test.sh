#!/usr/bin/env bash
# Installs the dependencies, builds with a CMake preset and runs the whole test suite with ctest.
# Usage: test.sh [PRESET]   (default: dev; e.g. dev-asan for the sanitizer build)
# The exit code is ctest's (or that of the first step that failed).
set -euo pipefail

PRESET=${1:-dev}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

bash scripts/setup.sh
cmake --preset "$PRESET"
cmake --build --preset "$PRESET" -j2
ctest --preset "$PRESET"
