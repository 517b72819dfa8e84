#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh: the README's first command. Installs what is missing, builds,
# starts goshmd with its defaults in the foreground of this script (no root
# needed), runs a zero-copy producer/consumer across two processes, prints
# the throughput and `goshmctl stats`, then stops the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGOSHM_BUILD_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)" --target goshmd goshmctl goshm-demo
sockdir=$(mktemp -d /tmp/goshm-demo.XXXXXX)
sock="$sockdir/goshmd.sock"
build/daemon/goshmd --socket "$sock" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$sockdir"' EXIT
build/tools/goshmctl --socket "$sock" wait
build/tools/goshm-demo --socket "$sock" --messages "${MESSAGES:-1000000}"
build/tools/goshmctl --socket "$sock" stats
