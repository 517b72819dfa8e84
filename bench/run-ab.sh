#!/bin/bash
# SPDX-License-Identifier: MIT
# run-ab.sh: two goshm source trees (A, B) against each other and the peers, interleaved.
#
# Overview: bench/README.md ("run-ab.sh"). run-service.sh measures one goshm
# against the peers; this measures a change: each tree is built and installed
# into its own prefix as run-service.sh does (bench/service-lib.sh, shared
# with it), bench/service of this checkout is built against each, each runs
# against its own goshmd, and every repetition runs A, B and the peers once,
# in reversed order every other repetition. Prints one line per run and a
# summary: median (min-max) per configuration and its median over B's; every
# run's figures go to a TSV (run-service.sh's columns) for bench/plot-ab.sh.
#
#   bench/run-ab.sh OLD_TREE NEW_TREE             # W1, SCALE=0.5, RUNS=9
#   W=W2 SCALE=1 RUNS=5 PEERS="mimalloc tcmalloc" bench/run-ab.sh OLD NEW
#   W=W3 bench/run-ab.sh OLD NEW                  # A, B, Boost; K=1 and K=$BATCH
#   W=R bench/run-ab.sh OLD NEW                   # A, B: R busy and after 1 ms idle
#   CALLGRIND=1 bench/run-ab.sh OLD NEW           # instructions per W1 pair instead
#
# Workloads: W1, W2, W4a, W4b (bench-alloc: goshm, and the peers by
# LD_PRELOAD over --alloc=libc); W3 (A-K1, B-K1, boost-K1 and the same with
# K=$BATCH: run-service.sh's bench-ipc and bench-ipc-boost commands); R (A, B:
# run-service.sh's bench-ipc R command, busy then with 1 ms of idle before
# each sample; small (REFILL) and large p50/p99). Every run of W3 and R is
# preceded by run-service.sh's cache-line ping-pong between CPU 0 and CPU 1
# (W4a and W4b measure their own); the summary flags a block whose median
# ping-pong is above PP_FLAG_NS.
#
# Environment: W (W1), SCALE (0.5), RUNS (9), PEERS ("tcmalloc jemalloc
# mimalloc glibc"; W1, W2, W4a, W4b), W3_PEERS ("boost", when bench/service
# built bench-ipc-boost; empty: none), BATCH (32), R_IDLE1 (2000 samples after
# 1 ms idle; busy R takes 20000 x SCALE), PP_FLAG_NS (100), LABEL (a word in
# the TSV), RESULTS (the TSV; default WORK/ab-W.tsv), RUN_TIMEOUT (600 s),
# WORK (a new /tmp directory; reused if it holds builds), CALLGRIND (1:
# valgrind --tool=callgrind on W1 at --scale 0.05, counting the instructions
# of the timed and warm-up loops, 1.1M pairs).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
A=${1:?usage: run-ab.sh OLD_TREE NEW_TREE}
B=${2:?usage: run-ab.sh OLD_TREE NEW_TREE}
W=${W:-W1} SCALE=${SCALE:-0.5} RUNS=${RUNS:-9}
case $W in W1|W2|W4a|W4b|W3|R) ;; *) echo "run-ab.sh: W=$W: W1, W2, W4a, W4b, W3 or R" >&2; exit 2 ;; esac
PEERS=${PEERS:-"tcmalloc jemalloc mimalloc glibc"}
W3_PEERS=${W3_PEERS-boost}
BATCH=${BATCH:-32} R_IDLE1=${R_IDLE1:-2000} PP_FLAG_NS=${PP_FLAG_NS:-100}
LABEL=${LABEL:-} RUN_TIMEOUT=${RUN_TIMEOUT:-600}
WORK=${WORK:-$(mktemp -d /tmp/goshm-ab.XXXXXX)}
RESULTS=${RESULTS:-$WORK/ab-$W.tsv}
mkdir -p "$WORK"
# shellcheck source-path=SCRIPTDIR source=service-lib.sh
. "$HERE/service-lib.sh"
MA=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
L=/usr/lib/$MA
declare -A PRE=([glibc]="" [tcmalloc]=$L/libtcmalloc_minimal.so.4 [jemalloc]=$L/libjemalloc.so.2
                [mimalloc]=$L/libmimalloc.so.2 [tbbmalloc]=$L/libtbbmalloc_proxy.so.2)

build() { # tree name
    [ -x "$WORK/$2/bench/bench-alloc" ] && return 0
    svc_build "$1" "$WORK/$2" "$WORK/$2.log" ||
        { echo "run-ab.sh: building $1 failed; see $WORK/$2.log" >&2; exit 2; }
}
build "$A" A
build "$B" B
declare -A REV=([A]=$(git -C "$A" rev-parse --short HEAD 2>/dev/null || echo unknown)
                [B]=$(git -C "$B" rev-parse --short HEAD 2>/dev/null || echo unknown))

DPIDS=""
stop_daemons() { local p; for p in $DPIDS; do kill "$p" 2>/dev/null; done; }
trap stop_daemons EXIT
for v in A B; do
    "$WORK/$v/prefix/bin/goshmd" --socket "$WORK/$v.sock" 2>"$WORK/$v.goshmd.log" &
    DPIDS="$DPIDS $!"
    "$WORK/$v/prefix/bin/goshmctl" --socket "$WORK/$v.sock" wait >/dev/null 2>&1 ||
        { echo "run-ab.sh: goshmd $v did not answer" >&2; exit 2; }
done

one() { # config -> the bench's "run" line (W1, W2, W4a, W4b)
    local c=$1 vg=()
    [ "${CALLGRIND:-0}" = 1 ] && vg=(valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$c.out")
    case $c in
        A|B) [ "${CALLGRIND:-0}" = 1 ] && vg+=(--toggle-collect=w1_goshm)
             "${vg[@]}" "$WORK/$c/bench/bench-alloc" --alloc=goshm --workload="$W" --socket "$WORK/$c.sock" \
                 --scale "$SCALE" 2>/dev/null ;;
        *) [ "${CALLGRIND:-0}" = 1 ] && vg+=(--toggle-collect=w1_libc)
           LD_PRELOAD=${PRE[$c]} "${vg[@]}" "$WORK/B/bench/bench-alloc" --alloc=libc --workload="$W" \
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

# ---- the runs: one line each, every figure into the TSV ----------------------

printf 'label\tgoshm_rev\trep\tworkload\tconfig\tmetric\tvalue\n' >"$RESULTS"
emit() { # workload config metric value; goshm_rev: the tree's, "-" for a peer
    local t=${2%%-K*}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${LABEL:--}" "${REV[$t]:--}" "$REP" "$1" "$2" "$3" "$4" >>"$RESULTS"
}
fail() { echo "run-ab.sh: $REP $*" >&2; exit 1; }

# alloc_run CONFIG: W1, W2, W4a, W4b (W4a and W4b report their own ping-pong).
alloc_run() {
    local c=$1 line ns pp
    line=$(one "$c")
    case $line in *check=ok*) ;; *) fail "$c: check failed: $line" ;; esac
    ns=$(svc_field ns "$line") pp=$(svc_field pp_ns "$line")
    emit "$W" "$c" ns "$ns"
    [ -n "$pp" ] && emit "$W" "$c" pp_ns "$pp"
    echo "$REP $c ns=$ns${pp:+ pp=$pp}"
}

# w3_run CONFIG: A-K<k>, B-K<k> (bench-ipc against that tree's goshmd),
# boost-K<k>: the commands of run-service.sh, after a ping-pong.
w3_run() {
    local c=$1 t=${1%%-K*} pp out line ns
    pp=$(svc_pp "$WORK/B/bench")
    case $t in
        A|B) svc_w3_argv "goshm-K${c#*-K}" "$WORK/$t/bench" "$WORK/$t.sock" "$SCALE" ;;
        *) svc_w3_argv "$c" "$WORK/B/bench" "" "$SCALE" ;;
    esac
    out=$(timeout "$RUN_TIMEOUT" "${SVC_ARGV[@]}" 2>>"$WORK/W3.$c.err") || fail "$c: exit $?; see $WORK/W3.$c.err"
    line=$(grep '^run ' <<<"$out" | tail -1)
    svc_ipc_ok "$line" || fail "$c: check failed: ${line:-no output}"
    ns=$(svc_field ns_per_msg "$line")
    emit W3 "$c" ns "$ns"
    [ -n "$pp" ] && emit W3 "$c" pp_ns "$pp"
    echo "$REP $c ns=$ns pp=${pp:-?}"
}

# r_run CONFIG MODE SAMPLES GAP_US: R against CONFIG's goshmd (run-service.sh's
# command), after a ping-pong; workloads R-small-MODE and R-large-MODE.
r_run() {
    local c=$1 mode=$2 pp out line kind p50 p99 msg=""
    pp=$(svc_pp "$WORK/B/bench")
    svc_r_argv "$WORK/$c/bench" "$WORK/$c.sock" "$3" "$4"
    out=$(timeout "$RUN_TIMEOUT" "${SVC_ARGV[@]}" 2>>"$WORK/R.$c.err") || fail "R $c $mode: exit $?; see $WORK/R.$c.err"
    [ "$(grep -c '^run ' <<<"$out")" = 2 ] || fail "R $c $mode: no figures; see $WORK/R.$c.err"
    while read -r line; do
        kind=$(svc_field kind "$line") p50=$(svc_field p50_ns "$line") p99=$(svc_field p99_ns "$line")
        emit "R-$kind-$mode" "$c" p50_ns "$p50"
        emit "R-$kind-$mode" "$c" p99_ns "$p99"
        [ -n "$pp" ] && emit "R-$kind-$mode" "$c" pp_ns "$pp"
        msg="$msg ${kind}_p50=$p50 ${kind}_p99=$p99"
    done < <(grep '^run ' <<<"$out")
    echo "$REP $c $mode$msg pp=${pp:-?}"
}

case $W in
    W1|W2|W4a|W4b) CFGS="A B $PEERS" ;;
    W3) K1="A-K1 B-K1" KB="A-K$BATCH B-K$BATCH"
        case " $W3_PEERS " in *" boost "*)
            if [ -x "$WORK/B/bench/bench-ipc-boost" ]; then K1="$K1 boost-K1" KB="$KB boost-K$BATCH"
            else echo "run-ab.sh: W3 boost: skipped (bench-ipc-boost not built: Debian libboost-dev)" >&2; fi ;;
        esac
        CFGS="$K1 $KB" ;;
    R) CFGS="A B" R_BUSY=$(svc_r_busy_samples "$SCALE") ;;
esac
for REP in $(seq "$RUNS"); do
    list=$CFGS
    [ $((REP % 2)) = 0 ] && list=$(tr ' ' '\n' <<<"$CFGS" | tac | tr '\n' ' ')
    for c in $list; do
        case $W in
            W3) w3_run "$c" ;;
            R) r_run "$c" busy "$R_BUSY" 0 ;;
            *) alloc_run "$c" ;;
        esac
    done
    if [ "$W" = R ] && [ "$R_IDLE1" -gt 0 ]; then
        for c in $list; do r_run "$c" idle1ms "$R_IDLE1" 1000; done
    fi
done
for p in $DPIDS; do kill -0 "$p" 2>/dev/null || { echo "run-ab.sh: a goshmd died during the runs" >&2; exit 1; }; done

# ---- the summary -------------------------------------------------------------------

echo "# $W SCALE=$SCALE RUNS=$RUNS; A: $A (${REV[A]}), B: $B (${REV[B]}); TSV: $RESULTS"
echo "# median (min-max) of the runs; x/B: this median over B's (W3: over B-K of the same K; below 1: lower than B's);"
echo "# pp: ns per cache-line round trip CPU 0 <-> CPU 1 before each run, median (max); FLAG: median above $PP_FLAG_NS ns"
awk -F'\t' 'NR > 1 { print $4 "\t" $5 "\t" $6 "\t" $7 }' "$RESULTS" >"$WORK/all.tsv"
# groups: workload and metric in order of appearance, R's small ones first
groups=$(awk -F'\t' '$3 != "pp_ns" && !(($1, $3) in s) { s[$1, $3]; print ($1 ~ /-large-/) "\t" $1 "\t" $3 }' \
             "$WORK/all.tsv" | sort -s -n -k1,1 | cut -f2-)
while IFS="$(printf '\t')" read -r w m; do
    echo "$w $m"
    awk -f "$HERE/stats.awk" -v w="$w" -v m=pp_ns "$WORK/all.tsv" >"$WORK/pp.txt"
    awk -f "$HERE/stats.awk" -v w="$w" -v m="$m" "$WORK/all.tsv" |
        awk -F'\t' -v flag="$PP_FLAG_NS" -v ppf="$WORK/pp.txt" '
            BEGIN { while ((getline l < ppf) > 0) { split(l, f, "\t"); gsub(/"/, "", f[1]); ppmed[f[1]] = f[2]; ppmax[f[1]] = f[4] } }
            function fmtv(v) { return sprintf(hi[x] >= 100 ? "%.0f" : "%.2f", v) } # one format a row
            { gsub(/"/, "", $1); c[++n] = $1; med[$1] = $2; lo[$1] = $3; hi[$1] = $4 }
            END {
                for (i = 1; i <= n; i++) {
                    x = c[i]; r = x; sub(/^[^-]*/, "B", r); if (x !~ /-K/) r = "B"
                    ratio = (r in med && med[r] > 0) ? sprintf("%.2f", med[x] / med[r]) : "-"
                    pp = (x in ppmed) ? sprintf("  pp %.0f (%.0f)%s", ppmed[x], ppmax[x], ppmed[x] > flag + 0 ? " FLAG" : "") : ""
                    printf "  %-10s %10s (%s-%s)  x/B %s%s\n", x, fmtv(med[x]), fmtv(lo[x]), fmtv(hi[x]), ratio, pp
                }
            }'
done <<<"$groups"
