#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-ipc.sh: the cross-process benchmarks: W3 for goshm (unbatched and
# batched) and Boost.Interprocess, and R (refill round trip) for goshm.
# Starts its own goshmd on a temporary socket, prints markdown tables of
# medians (min–max), stops the daemon (SIGTERM) and cleans up.
#
#   bench/run-ipc.sh BUILD_DIR
#
# Environment:
#   RUNS=5             runs of every configuration (interleaved: round r of
#                      every configuration before round r+1 of any)
#   SCALE=1            --scale for W3 (2M messages at 1) and R (20k samples)
#   BATCH=32           K of the batched W3 mode (tail/head published every K)
#   RING=256           W3 ring slots
#   R_IDLE_SAMPLES=2000  samples of R with a 1 ms gap before each (a daemon
#                      that has gone to sleep); 0 skips it
#   R_PINNED=1         also run R with the daemon pinned to the last CPU and the
#                      client to CPU 0 (taskset; skipped on one CPU)
#   GOSHMD_ARGS=       extra goshmd options (e.g. "--spin-us 200 --force-epoll")
#   OUT=DIR            where raw logs go (default: a new /tmp dir, kept)
#
# Every run's own checks are verified: the consumer counted every message as
# good (checked == messages + warm-up, errors == 0) and exited 0. A failed
# check makes this script exit 1 after printing what it has. Compare ratios
# within one invocation, never absolute figures across invocations: the
# machine is shared and noisy.
set -u

BUILD=${1:?usage: run-ipc.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
GOSHMD=$BUILD/daemon/goshmd
CTL=$BUILD/tools/goshmctl
BIN=$BUILD/bench/bench-ipc
BOOST=$BUILD/bench/bench-ipc-boost
for f in "$GOSHMD" "$BIN"; do
    [ -x "$f" ] || { echo "run-ipc.sh: $f not found; build with: cmake --build $BUILD" >&2; exit 2; }
done
RUNS=${RUNS:-5}
SCALE=${SCALE:-1}
BATCH=${BATCH:-32}
RING=${RING:-256}
R_IDLE_SAMPLES=${R_IDLE_SAMPLES:-2000}
GOSHMD_ARGS=${GOSHMD_ARGS:-}
OUT=${OUT:-$(mktemp -d /tmp/bench-ipc.XXXXXX)}
mkdir -p "$OUT"
RUN_TIMEOUT=${RUN_TIMEOUT:-900}

note() { echo "$*" >&2; }

TMP=$(mktemp -d /tmp/goshm-run-ipc.XXXXXX)
SOCK=$TMP/goshmd.sock
DPID=
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2086
"$GOSHMD" --socket "$SOCK" $GOSHMD_ARGS 2>"$OUT/goshmd.log" &
DPID=$!
if [ -x "$CTL" ]; then
    "$CTL" --socket "$SOCK" wait >/dev/null 2>&1 || { note "run-ipc.sh: goshmd did not answer; see $OUT/goshmd.log"; exit 2; }
else
    for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
    [ -S "$SOCK" ] || { note "run-ipc.sh: goshmd did not answer; see $OUT/goshmd.log"; exit 2; }
fi
note "goshmd pid $DPID on $SOCK ($(sed -n 's/.*data plane: //p' "$OUT/goshmd.log" | head -1)); logs in $OUT"

HAVE_BOOST=0
if [ -x "$BOOST" ]; then HAVE_BOOST=1; else note "Boost.Interprocess: skipped ($BOOST not built: Debian libboost-dev)"; fi

FAIL=0
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2" | head -1; }

# run_w3 NAME CMD...: one W3 run; appends ns/msg to $OUT/NAME.ns after checking it.
run_w3() {
    local name=$1; shift
    local line rc
    timeout "$RUN_TIMEOUT" "$@" >"$TMP/out" 2>>"$OUT/$name.err"
    rc=$?
    line=$(grep '^run ' "$TMP/out")
    echo "$line" >>"$OUT/$name.log"
    local ok checked errors msgs warm ns
    ok=$(field ok "$line"); checked=$(field checked "$line"); errors=$(field errors "$line")
    msgs=$(field messages "$line"); warm=$(field warmup "$line"); ns=$(field ns_per_msg "$line")
    if [ "$rc" != 0 ] || [ "$ok" != 1 ] || [ "$errors" != 0 ] || [ -z "$msgs" ] ||
       [ "$checked" != "$((msgs + warm))" ]; then
        note "$name: CHECK FAILED (exit $rc): ${line:-no output}; see $OUT/$name.err"
        FAIL=1
        return
    fi
    echo "$ns" >>"$OUT/$name.ns"
}

# run_r TAG GAP SAMPLES [pin]: one R run; appends p50/p99 per kind to
# $OUT/R-TAG-KIND.{p50,p99}. With pin: the daemon's threads on the last CPU,
# the client on the first, for this run only (a diagnostic: it separates the
# protocol's cost from the scheduler's placement of client and daemon).
run_r() {
    local tag=$1 gap=$2 samples=$3 pin=${4:-} out rc line kind
    local pre=()
    if [ -n "$pin" ]; then
        taskset -a -p -c "$LASTCPU" "$DPID" >/dev/null || return 0
        pre=(taskset -c 0)
    fi
    out=$(timeout "$RUN_TIMEOUT" "${pre[@]}" "$BIN" --workload=R --socket "$SOCK" --samples "$samples" \
          --gap-us "$gap" 2>>"$OUT/R.err")
    rc=$?
    [ -n "$pin" ] && taskset -a -p -c "0-$LASTCPU" "$DPID" >/dev/null
    echo "$out" >>"$OUT/R-$tag.log"
    if [ "$rc" != 0 ] || [ "$(grep -c '^run ' <<<"$out")" != 2 ]; then
        note "R ($tag): FAILED (exit $rc); see $OUT/R.err"
        FAIL=1
        return
    fi
    while read -r line; do
        kind=$(field kind "$line")
        field p50_ns "$line" >>"$OUT/R-$tag-$kind.p50"
        field p99_ns "$line" >>"$OUT/R-$tag-$kind.p99"
    done < <(grep '^run ' <<<"$out")
}

PIN=0
LASTCPU=$(( $(nproc 2>/dev/null || echo 1) - 1 ))
if [ "${R_PINNED:-1}" = 1 ] && [ "$LASTCPU" -ge 1 ] && command -v taskset >/dev/null; then PIN=1; fi

W3_COMMON=(--scale "$SCALE" --ring "$RING")
R_SAMPLES=$(awk -v s="$SCALE" 'BEGIN { n = int(20000 * s); print (n < 100 ? 100 : n) }')
for r in $(seq "$RUNS"); do
    note "round $r/$RUNS"
    run_w3 goshm-k1 "$BIN" --workload=W3 --socket "$SOCK" "${W3_COMMON[@]}" --batch 1
    run_w3 goshm-kB "$BIN" --workload=W3 --socket "$SOCK" "${W3_COMMON[@]}" --batch "$BATCH"
    if [ $HAVE_BOOST = 1 ]; then
        run_w3 boost-k1 "$BOOST" "${W3_COMMON[@]}" --batch 1
        run_w3 boost-kB "$BOOST" "${W3_COMMON[@]}" --batch "$BATCH"
    fi
    run_r busy 0 "$R_SAMPLES"
    [ "$R_IDLE_SAMPLES" -gt 0 ] && run_r idle 1000 "$R_IDLE_SAMPLES"
    [ $PIN = 1 ] && run_r pinned 0 "$R_SAMPLES" pin
done

if ! kill -0 "$DPID" 2>/dev/null; then
    note "run-ipc.sh: goshmd died during the runs; see $OUT/goshmd.log"
    FAIL=1
else
    kill -TERM "$DPID"
    wait "$DPID"
    drc=$?
    [ "$drc" = 0 ] || { note "run-ipc.sh: goshmd exited $drc on SIGTERM"; FAIL=1; }
fi
DPID=

# stats FILE -> "median min max" (upper median for an even count), or empty.
stats() {
    [ -s "$1" ] || return 0
    sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int(NR / 2) + 1], v[1], v[NR] }'
}
fmt_ns() { # median min max -> "m (lo–hi)"
    [ $# -eq 3 ] || { echo "—"; return; }
    awk -v m="$1" -v lo="$2" -v hi="$3" 'BEGIN { printf "%.0f (%.0f–%.0f)", m, lo, hi }'
}
fmt_rate() { # ns stats -> "M msgs/s (lo–hi)"
    [ $# -eq 3 ] || { echo "—"; return; }
    awk -v m="$1" -v lo="$2" -v hi="$3" 'BEGIN { printf "%.2fM (%.2f–%.2f)", 1000 / m, 1000 / hi, 1000 / lo }'
}
ratio() { # boost-median goshm-median
    if [ -z "${1:-}" ] || [ -z "${2:-}" ]; then echo "—"; return; fi
    awk -v b="$1" -v g="$2" 'BEGIN { printf "%.2fx", b / g }'
}

echo
echo "W3: $(awk -v s="$SCALE" 'BEGIN { printf "%d", 2000000 * s }') messages of 64..4096 B, ring of $RING, median of $RUNS runs (min–max)."
echo "ns/message and messages/s (M = 10^6); Boost/goshm is Boost's ns/message over goshm's (> 1: goshm is faster)."
echo
echo "| W3 | goshm ns/msg | goshm msgs/s | Boost ns/msg | Boost msgs/s | Boost/goshm |"
echo "|---|---|---|---|---|---|"
for k in k1 kB; do
    label="unbatched (K=1)"; [ $k = kB ] && label="batched (K=$BATCH)"
    read -r gm glo ghi <<<"$(stats "$OUT/goshm-$k.ns")"
    read -r bm blo bhi <<<"$(stats "$OUT/boost-$k.ns")"
    # shellcheck disable=SC2086
    echo "| $label | $(fmt_ns ${gm:-} ${glo:-} ${ghi:-}) | $(fmt_rate ${gm:-} ${glo:-} ${ghi:-}) |" \
         "$(fmt_ns ${bm:-} ${blo:-} ${bhi:-}) | $(fmt_rate ${bm:-} ${blo:-} ${bhi:-}) | $(ratio "${bm:-}" "${gm:-}") |"
done
echo
echo "R: goshm_malloc that needs a round trip with goshmd, ns, median of $RUNS runs (min–max)."
echo "small = 32 KiB (REFILL), large = 40 KiB (LARGE_ALLOC); busy = back to back ($R_SAMPLES samples),"
echo "idle = 1 ms pause before each ($R_IDLE_SAMPLES samples): the daemon has gone to sleep."
[ $PIN = 1 ] && echo "pinned = busy, with the daemon on CPU $LASTCPU and the client on CPU 0 (diagnostic)."
echo
echo "| R | p50 ns | p99 ns |"
echo "|---|---|---|"
for tag in busy idle pinned; do
    for kind in small large; do
        [ -s "$OUT/R-$tag-$kind.p50" ] || continue
        # shellcheck disable=SC2046
        echo "| $kind, $tag | $(fmt_ns $(stats "$OUT/R-$tag-$kind.p50")) | $(fmt_ns $(stats "$OUT/R-$tag-$kind.p99")) |"
    done
done
echo
[ $FAIL = 0 ] || note "run-ipc.sh: some checks FAILED (see above)"
exit $FAIL
