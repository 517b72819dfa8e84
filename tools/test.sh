#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test.sh: the README's second command (and what CI runs). Installs what is
# missing, then builds and runs the ctest suites three ways:
#   1. release build, warnings as errors: every test;
#   2. ASan+UBSan build: every test;
#   3. TSan build: the multi-threaded tests (ctest label "concurrency").
# Set GOSHM_TEST_QUICK=1 to run only the first.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)

run() { # name, cmake args..., then -- ctest args...
  local name=$1; shift
  local cargs=() targs=()
  while (($#)) && [[ $1 != -- ]]; do cargs+=("$1"); shift; done
  shift || true
  targs=("$@")
  echo "=== $name"
  cmake -S . -B "build-$name" -DGOSHM_WERROR=ON -DGOSHM_BUILD_BENCH=OFF "${cargs[@]}" >/dev/null
  cmake --build "build-$name" -j"$jobs"
  (cd "build-$name" && ctest --output-on-failure -j"$jobs" "${targs[@]}")
}

run release -DCMAKE_BUILD_TYPE=RelWithDebInfo --
if [[ "${GOSHM_TEST_QUICK:-0}" != 1 ]]; then
  run asan -DCMAKE_BUILD_TYPE=Debug -DGOSHM_SANITIZE=address,undefined --
  run tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOSHM_SANITIZE=thread -- -L concurrency
fi
echo "test.sh: all suites passed"
