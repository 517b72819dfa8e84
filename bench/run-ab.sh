#!/bin/bash
# SPDX-License-Identifier: MIT
# run-ab.sh: two goshm source trees (A, B) against each other and the peers, interleaved.
#
# Overview: bench/README.md ("What moved, and why"). run-service.sh measures
# one goshm against the peers; this measures a change: each tree is built
# and installed into its own prefix as run-service.sh does (RelWithDebInfo,
# `cmake --install`), bench/service of this checkout is built against each,
# each runs against its own goshmd, and every repetition runs A, B and the
# peers (LD_PRELOAD over --alloc=libc) once, in reversed order every other
# repetition. Prints one line per run ("rep config ns=...") and a summary:
# median (min-max) per configuration and each one's median over B's.
#
#   bench/run-ab.sh OLD_TREE NEW_TREE             # W1, SCALE=0.5, RUNS=9
#   W=W2 SCALE=1 RUNS=5 PEERS="mimalloc tcmalloc" bench/run-ab.sh OLD NEW
#   CALLGRIND=1 bench/run-ab.sh OLD NEW           # instructions per W1 pair instead
#
# Environment: W (W1), SCALE (0.5), RUNS (9), PEERS ("tcmalloc jemalloc
# mimalloc glibc"), WORK (a new /tmp directory; reused if it holds builds),
# CALLGRIND (1: valgrind --tool=callgrind on W1 at --scale 0.05, counting
# the instructions of the timed and warm-up loops, 1.1M pairs).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
A=${1:?usage: run-ab.sh OLD_TREE NEW_TREE}
B=${2:?usage: run-ab.sh OLD_TREE NEW_TREE}
W=${W:-W1} SCALE=${SCALE:-0.5} RUNS=${RUNS:-9}
PEERS=${PEERS:-"tcmalloc jemalloc mimalloc glibc"}
WORK=${WORK:-$(mktemp -d /tmp/goshm-ab.XXXXXX)}
mkdir -p "$WORK"
MA=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
L=/usr/lib/$MA
declare -A PRE=([glibc]="" [tcmalloc]=$L/libtcmalloc_minimal.so.4 [jemalloc]=$L/libjemalloc.so.2
                [mimalloc]=$L/libmimalloc.so.2 [tbbmalloc]=$L/libtbbmalloc_proxy.so.2)

build() { # tree name
    [ -x "$WORK/$2-bench/bench-alloc" ] && return 0
    # shellcheck disable=SC2015  # any failing step reports the failure
    cmake -S "$1" -B "$WORK/$2-build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOSHM_BUILD_TESTS=OFF \
          -DGOSHM_BUILD_BENCH=OFF >"$WORK/$2.log" 2>&1 &&
    cmake --build "$WORK/$2-build" -j2 >>"$WORK/$2.log" 2>&1 &&
    cmake --install "$WORK/$2-build" --prefix "$WORK/$2-prefix" >>"$WORK/$2.log" 2>&1 &&
    cmake -S "$HERE/service" -B "$WORK/$2-bench" -DCMAKE_PREFIX_PATH="$WORK/$2-prefix" >>"$WORK/$2.log" 2>&1 &&
    cmake --build "$WORK/$2-bench" -j2 >>"$WORK/$2.log" 2>&1 ||
        { echo "run-ab.sh: building $1 failed; see $WORK/$2.log" >&2; exit 2; }
}
build "$A" A
build "$B" B

DPIDS=""
stop_daemons() { local p; for p in $DPIDS; do kill "$p" 2>/dev/null; done; }
trap stop_daemons EXIT
for v in A B; do
    "$WORK/$v-prefix/bin/goshmd" --socket "$WORK/$v.sock" 2>"$WORK/$v.goshmd.log" &
    DPIDS="$DPIDS $!"
    "$WORK/$v-prefix/bin/goshmctl" --socket "$WORK/$v.sock" wait >/dev/null 2>&1 ||
        { echo "run-ab.sh: goshmd $v did not answer" >&2; exit 2; }
done

one() { # config -> the bench's "run" line
    local c=$1 vg=()
    [ "${CALLGRIND:-0}" = 1 ] && vg=(valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$c.out")
    case $c in
        A|B) [ "${CALLGRIND:-0}" = 1 ] && vg+=(--toggle-collect=w1_goshm)
             "${vg[@]}" "$WORK/$c-bench/bench-alloc" --alloc=goshm --workload="$W" --socket "$WORK/$c.sock" \
                 --scale "$SCALE" 2>/dev/null ;;
        *) [ "${CALLGRIND:-0}" = 1 ] && vg+=(--toggle-collect=w1_libc)
           LD_PRELOAD=${PRE[$c]} "${vg[@]}" "$WORK/B-bench/bench-alloc" --alloc=libc --workload="$W" \
               --scale "$SCALE" 2>/dev/null ;;
    esac | grep '^run '
}

if [ "${CALLGRIND:-0}" = 1 ]; then
    [ "$W" = W1 ] || { echo "run-ab.sh: CALLGRIND=1 measures W1 only" >&2; exit 2; }
    SCALE=0.05
    for c in A B $PEERS; do
        line=$(one "$c")
        case $line in *check=ok*) ;; *) echo "run-ab.sh: $c: check failed: $line" >&2; exit 1 ;; esac
        ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$WORK/cg.$c.out")
        awk -v c="$c" -v ir="$ir" 'BEGIN { printf "%s instructions=%d per_pair=%.1f\n", c, ir, ir / 1100000 }'
    done
    exit 0
fi

RES=$WORK/runs.txt
: >"$RES"
CFGS="A B $PEERS"
for r in $(seq "$RUNS"); do
    list=$CFGS
    [ $((r % 2)) = 0 ] && list=$(tr ' ' '\n' <<<"$CFGS" | tac | tr '\n' ' ')
    for c in $list; do
        line=$(one "$c")
        case $line in *check=ok*) ;; *) echo "run-ab.sh: $r $c: check failed: $line" >&2; exit 1 ;; esac
        ns=$(sed -n 's/.* ns=\([^ ]*\).*/\1/p' <<<"$line")
        echo "$r $c ns=$ns" | tee -a "$RES"
    done
done
echo "# $W SCALE=$SCALE RUNS=$RUNS: median (min-max) ns; B/this: B's median over this one's (A: $A, B: $B)"
for c in $CFGS; do
    sed -n "s/^[0-9]* $c ns=//p" "$RES" | sort -g |
        awk -v c="$c" '{ v[NR] = $1 }
            END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s %.2f %.2f %.2f\n", c, m, v[1], v[NR] }'
done >"$WORK/summary.txt"
bmed=$(awk '$1 == "B" { print $2 }' "$WORK/summary.txt")
awk -v b="$bmed" '{ printf "%-10s %8s (%s-%s)  B/this %.2f\n", $1, $2, $3, $4, b / $2 }' "$WORK/summary.txt"
