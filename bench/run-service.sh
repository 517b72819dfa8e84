#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-service.sh: goshm as users get it (the INSTALLED libgoshm.so talking to a
# running goshmd) against its peers, in one run: W1, W2, W4a, W4b, W3, R, W5
# and W6 of BENCHMARKS.md. Prints a markdown table of medians (min–max) and goshm/peer
# ratios, writes every run's figures to a TSV under bench/results/.
#
#   bench/run-service.sh [GOSHM_SOURCE_DIR]
#
# GOSHM_SOURCE_DIR (default: this checkout) is the goshm to measure: it is
# configured (Release flags of the project: RelWithDebInfo, no tests), built
# and `cmake --install`ed into a temporary prefix; the benchmark programs of
# THIS checkout's bench/service are then built against that prefix with
# find_package(goshm) and run against the installed goshmd, which this script
# starts (and iox-roudi, for iceoryx). So an older goshm can be measured with
# today's harness (a "before" run).
#
# Environment:
#   RUNS=5          repetitions; each repetition runs every configuration once,
#                   in an order reversed every other repetition
#   SCALE=1         shrinks every count (SCALE=0.05 RUNS=2: a smoke run)
#   WORKLOADS="W1 W2 W4a W4b W3 R W5 W6"
#   ALLOCS="goshm glibc jemalloc mimalloc tcmalloc tbbmalloc boost"
#                   (W1, W2, W4a, W4b; boost = Boost.Interprocess: W1, W2 only)
#   W3_PEERS="boost iceoryx"   the peers of the cross-process workloads W3, W5
#                   and W6 (boost: bench-ipc-boost for W3, bench-mq-boost for
#                   W5/W6)
#   W5_SPIN_US=-1   W5's wait: -1 polls for ever (W3's loop); US: poll US
#                   microseconds, then block (bench/service/bench-msg.h)
#   W6_SPIN_US=50   W6's wait (five processes on two CPUs: pollers must sleep)
#   W6_SCALE=1      W6's buffer count, 1M x SCALE x W6_SCALE (noted in the table)
#   BATCH=32        K of the batched W3 configurations
#   R_IDLE1=2000 R_IDLE100=50   R samples after 1 ms / 100 ms of idle (0: skip)
#   PP_FLAG_NS=150  flag a cross-core block whose cache-line ping-pong is above
#   LABEL=          a word stored in the TSV (e.g. before, after)
#   RESULTS=bench/results/service-DATE.tsv
#   GOSHMD_ARGS=    extra goshmd options
#   OUT=DIR         raw logs (default: a new /tmp directory, kept)
#   KEEP_BUILD=DIR  reuse an installed prefix + bench build from a previous run
#
# Peers: glibc as is; jemalloc, mimalloc, tcmalloc, tbbmalloc by LD_PRELOAD
# of their Debian shared libraries over bench-alloc's --alloc=libc (every
# run reports which library provides malloc; a preload that did not take
# fails the run). Boost.Interprocess and iceoryx for W3, W5 and W6 (their own
# programs); W5/W6 need an installed goshm with channels (GOSHM_0.3), or goshm
# is skipped there (the peers still run).
# Every run checks its results (checksums, sequence numbers, tags); a failed
# check is reported and makes the script exit 1. Compare ratios within one
# run, never absolute figures across runs: the machine is shared and noisy.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "${1:-$HERE/..}" && pwd)
RUNS=${RUNS:-5}
SCALE=${SCALE:-1}
WORKLOADS=${WORKLOADS:-"W1 W2 W4a W4b W3 R W5 W6"}
ALLOCS=${ALLOCS:-"goshm glibc jemalloc mimalloc tcmalloc tbbmalloc boost"}
W3_PEERS=${W3_PEERS:-"boost iceoryx"}
W5_SPIN_US=${W5_SPIN_US:--1}
W6_SPIN_US=${W6_SPIN_US:-50}
W6_SCALE=${W6_SCALE:-1}
BATCH=${BATCH:-32}
R_IDLE1=${R_IDLE1:-2000}
R_IDLE100=${R_IDLE100:-50}
PP_FLAG_NS=${PP_FLAG_NS:-150}
LABEL=${LABEL:-}
GOSHMD_ARGS=${GOSHMD_ARGS:-}
OUT=${OUT:-$(mktemp -d /tmp/bench-service.XXXXXX)}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS:-$HERE/results/service-$STAMP.tsv}
mkdir -p "$OUT" "$(dirname "$RESULTS")"
note() { echo "$*" >&2; }
# shellcheck source-path=SCRIPTDIR source=service-lib.sh
. "$HERE/service-lib.sh"

# ---- install goshm, build the benchmarks against the install ------------------

WORK=${KEEP_BUILD:-$OUT/work}
PREFIX=$WORK/prefix
if [ ! -x "$WORK/bench/bench-alloc" ]; then
    note "building goshm from $SRC, installing into $PREFIX"
    svc_build "$SRC" "$WORK" "$OUT/build.log" ||
        { note "run-service.sh: build failed; see $OUT/build.log"; exit 2; }
fi
B=$WORK/bench
ALLOC=$B/bench-alloc
LIBGOSHM=$(ldd "$ALLOC" | awk '/libgoshm/ { print $3 }')
case $LIBGOSHM in
    "$PREFIX"/*) ;;
    *) note "run-service.sh: bench-alloc does not load the installed libgoshm ($LIBGOSHM)"; exit 2 ;;
esac
GOSHM_REV=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
TLS_CALLS=$(objdump -d "$LIBGOSHM" 2>/dev/null | grep -c 'call.*__tls_get_addr' || true)

# ---- daemons -----------------------------------------------------------------

TMP=$(mktemp -d /tmp/goshm-run-service.XXXXXX)
SOCK=$TMP/goshmd.sock
DPID='' RPID=''
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    for p in $DPID $RPID; do
        if kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; fi
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2086
"$PREFIX/bin/goshmd" --socket "$SOCK" $GOSHMD_ARGS 2>"$OUT/goshmd.log" &
DPID=$!
if ! "$PREFIX/bin/goshmctl" --socket "$SOCK" wait >/dev/null 2>&1; then
    note "run-service.sh: goshmd did not answer; see $OUT/goshmd.log"; exit 2
fi
note "goshm $GOSHM_REV installed in $PREFIX; goshmd pid $DPID; $TLS_CALLS calls to __tls_get_addr in libgoshm.so; logs in $OUT"

HAVE_ICEORYX=0
case " $WORKLOADS " in *" W3 "*|*" W5 "*|*" W6 "*)
    case " $W3_PEERS " in *" iceoryx "*)
        if [ ! -x "$B/bench-w3-iceoryx" ]; then
            note "iceoryx: skipped: bench-w3-iceoryx not built (Debian libiceoryx-binding-c-dev)"
        elif ! command -v iox-roudi >/dev/null; then
            note "iceoryx: skipped: iox-roudi not installed (Debian iceoryx)"
        elif pgrep -x iox-roudi >/dev/null; then
            note "iceoryx: skipped: an iox-roudi is already running on this machine (not ours)"
        else
            # RouDi's built-in configuration: shared memory in /dev/shm and a
            # Unix socket, both local to this machine.
            iox-roudi -l warning >"$OUT/roudi.log" 2>&1 &
            RPID=$!
            for _ in $(seq 50); do grep -q 'RouDi is ready' "$OUT/roudi.log" 2>/dev/null && break; sleep 0.1; done
            if grep -q 'RouDi is ready' "$OUT/roudi.log"; then HAVE_ICEORYX=1
            else note "iceoryx: skipped: iox-roudi did not start; see $OUT/roudi.log"; fi
        fi ;;
    esac ;;
esac

# ---- peers: which library provides malloc ----------------------------------------

provider() { LD_PRELOAD=${1:-} "$ALLOC" --alloc=libc --workload=PP --scale 0.001 2>/dev/null | sed -n 's/^# alloc=libc: malloc from //p'; }
find_so() {
    local so cand ma
    ma=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
    for so in "$@"; do
        for cand in $(ldconfig -p 2>/dev/null | awk -v s="$so" '$1 == s { print $NF }') /usr/lib/"$ma"/"$so"; do
            [ -e "$cand" ] && { echo "$cand"; return 0; }
        done
    done
    return 1
}
declare -A PRELOAD EXPECT
avail=""
for a in $ALLOCS; do
    case $a in
        goshm) avail="$avail $a"; continue ;;
        boost) if [ -x "$B/bench-alloc-boost" ]; then avail="$avail $a"; else note "boost: skipped for W1/W2 (Debian libboost-dev)"; fi
               continue ;;
        glibc) PRELOAD[$a]=""; EXPECT[$a]=libc.so ;;
        jemalloc) PRELOAD[$a]=$(find_so libjemalloc.so.2) || { note "jemalloc: skipped (Debian libjemalloc2)"; continue; }; EXPECT[$a]=jemalloc ;;
        mimalloc) PRELOAD[$a]=$(find_so libmimalloc.so.2 libmimalloc.so) || { note "mimalloc: skipped (Debian libmimalloc2.0)"; continue; }; EXPECT[$a]=mimalloc ;;
        tcmalloc) PRELOAD[$a]=$(find_so libtcmalloc_minimal.so.4 libtcmalloc.so.4) || { note "tcmalloc: skipped (Debian libtcmalloc-minimal4)"; continue; }; EXPECT[$a]=tcmalloc ;;
        tbbmalloc) PRELOAD[$a]=$(find_so libtbbmalloc_proxy.so.2 libtbbmalloc_proxy.so) || { note "tbbmalloc: skipped (Debian libtbbmalloc2)"; continue; }; EXPECT[$a]=tbbmalloc ;;
        *) note "unknown allocator $a ignored"; continue ;;
    esac
    p=$(provider "${PRELOAD[$a]}")
    case $p in
        *"${EXPECT[$a]}"*) avail="$avail $a"; note "  $a: malloc from $p${PRELOAD[$a]:+ (LD_PRELOAD=${PRELOAD[$a]})}" ;;
        *) note "$a: skipped: with LD_PRELOAD=${PRELOAD[$a]} malloc comes from '$p'" ;;
    esac
done

# ---- the runs ----------------------------------------------------------------

FAIL=0
printf 'label\tgoshm_rev\trep\tworkload\tconfig\tmetric\tvalue\n' >"$RESULTS"
field() { svc_field "$@"; }
emit() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${LABEL:--}" "$GOSHM_REV" "$REP" "$1" "$2" "$3" "$4" >>"$RESULTS"; }

# run_alloc W A: bench-alloc workload W with allocator A.
run_alloc() {
    local w=$1 a=$2 mode=libc out rc line k v bin=$ALLOC
    [ "$a" = goshm ] && mode=goshm
    if [ "$a" = boost ]; then
        case $w in W1|W2) bin=$B/bench-alloc-boost ;; *) return ;; esac
    fi
    out=$(LD_PRELOAD=${PRELOAD[$a]:-} timeout "$RUN_TIMEOUT" "$bin" --alloc=$mode --workload="$w" --socket "$SOCK" \
          --scale "$SCALE" 2>>"$OUT/$w.$a.err")
    rc=$?
    printf '%s\n' "$out" >>"$OUT/$w.$a.log"
    line=$(grep '^run ' <<<"$out")
    if [ $rc != 0 ] || [ "$(field check "$line")" != ok ]; then
        note "$w $a: CHECK FAILED (exit $rc): ${line:-no output}"; FAIL=1; return
    fi
    if [ "$a" != goshm ] && [ "$a" != boost ] && ! grep -q "^# alloc=libc: malloc from .*${EXPECT[$a]}" <<<"$out"; then
        note "$w $a: the preload did not take: $(grep '^# alloc' <<<"$out")"; FAIL=1; return
    fi
    for k in ns peak_rss_ratio kept_pct kept_settled_pct util pp_ns; do
        v=$(field $k "$line"); [ -n "$v" ] && emit "$w" "$a" "$k" "$v"
    done
}

# pingpong WORKLOAD CONFIG: the cache-line round trip just before a
# cross-process run.
pingpong() {
    local pp
    pp=$(svc_pp "$B")
    [ -n "$pp" ] && emit "$1" "$2" pp_ns "$pp"
}

# run_ipc WORKLOAD CONFIG CMD...: one cross-process run: W3 (bench-ipc,
# bench-ipc-boost, bench-w3-iceoryx), W5 or W6 (bench-chan, bench-mq-boost,
# bench-w3-iceoryx). Every subscriber must have checked every message:
# checked = subscribers x (messages + warm-up).
run_ipc() {
    local w=$1 cfg=$2 out rc line ns mps
    shift 2
    pingpong "$w" "$cfg"
    out=$(timeout "$RUN_TIMEOUT" "$@" 2>>"$OUT/$w.$cfg.err")
    rc=$?
    printf '%s\n' "$out" >>"$OUT/$w.$cfg.log"
    line=$(grep '^run ' <<<"$out" | tail -1)
    ns=$(field ns_per_msg "$line"); [ -n "$ns" ] || ns=$(field ns "$line")
    if [ $rc != 0 ] || ! svc_ipc_ok "$line"; then
        note "$w $cfg: CHECK FAILED (exit $rc): ${line:-no output}; see $OUT/$w.$cfg.err"; FAIL=1; return
    fi
    emit "$w" "$cfg" ns "$ns"
    mps=$(field msgs_per_s "$line"); [ -n "$mps" ] && emit "$w" "$cfg" msgs_per_s "$mps"
    [ "$w" = W3 ] || emit "$w" "$cfg" messages "$(field messages "$line")"
}

# run_r CONFIG GAP_US SAMPLES: refill round trips, small (REFILL) and large.
run_r() {
    local cfg=$1 gap=$2 n=$3 out rc line kind
    svc_r_argv "$B" "$SOCK" "$n" "$gap"
    out=$(timeout "$RUN_TIMEOUT" "${SVC_ARGV[@]}" 2>>"$OUT/R.err")
    rc=$?
    printf '%s\n' "$out" >>"$OUT/R.$cfg.log"
    if [ $rc != 0 ] || [ "$(grep -c '^run ' <<<"$out")" != 2 ]; then
        note "R $cfg: FAILED (exit $rc); see $OUT/R.err"; FAIL=1; return
    fi
    while read -r line; do
        kind=$(field kind "$line")
        emit R "$kind, $cfg" p50_ns "$(field p50_ns "$line")"
        emit R "$kind, $cfg" p99_ns "$(field p99_ns "$line")"
    done < <(grep '^run ' <<<"$out")
}

reverse() { local x out=""; for x in "$@"; do out="$x $out"; done; echo "$out"; }
R_BUSY=$(svc_r_busy_samples "$SCALE")
W3_CFGS="goshm-K1 goshm-K$BATCH"
for p in $W3_PEERS; do
    case $p in
        boost) if [ -x "$B/bench-ipc-boost" ]; then W3_CFGS="$W3_CFGS boost-K1 boost-K$BATCH"; else note "boost: skipped (not built)"; fi ;;
        iceoryx) [ $HAVE_ICEORYX = 1 ] && W3_CFGS="$W3_CFGS iceoryx" ;;
    esac
done
# W5 and W6: goshm's channels (bench-chan, built only against a goshm that
# has them), Boost's message_queue, iceoryx.
CHAN_CFGS=""
case " $WORKLOADS " in *" W5 "*|*" W6 "*)
    if [ -x "$B/bench-chan" ]; then CHAN_CFGS=goshm
    else note "W5/W6 goshm: skipped: the installed libgoshm ($GOSHM_REV) has no channels (bench-chan not built)"; fi
    for p in $W3_PEERS; do
        case $p in
            boost) if [ -x "$B/bench-mq-boost" ]; then CHAN_CFGS="$CHAN_CFGS boost-mq"; else note "W5/W6 boost: skipped (not built)"; fi ;;
            iceoryx) [ $HAVE_ICEORYX = 1 ] && CHAN_CFGS="$CHAN_CFGS iceoryx" ;;
        esac
    done ;;
esac
W6_EFF=$(awk -v a="$SCALE" -v b="$W6_SCALE" 'BEGIN { printf "%g", a * b }')
note "allocators:$avail; W3: $W3_CFGS; W5/W6:${CHAN_CFGS:- none}; runs $RUNS, scale $SCALE (W6 $W6_EFF); results: $RESULTS"

for REP in $(seq "$RUNS"); do
    order=$avail w3order=$W3_CFGS corder=$CHAN_CFGS
    # shellcheck disable=SC2086  # word lists, split on purpose
    if [ $((REP % 2)) = 0 ]; then order=$(reverse $avail); w3order=$(reverse $W3_CFGS); corder=$(reverse $CHAN_CFGS); fi
    for w in $WORKLOADS; do
        note "repetition $REP/$RUNS: $w"
        case $w in
            W1|W2|W4a|W4b) for a in $order; do run_alloc "$w" "$a"; done ;;
            W3)
                for c in $w3order; do
                    svc_w3_argv "$c" "$B" "$SOCK" "$SCALE" && run_ipc W3 "$c" "${SVC_ARGV[@]}"
                done ;;
            W5|W6)
                sc=$SCALE sp=$W5_SPIN_US
                [ "$w" = W6 ] && sc=$W6_EFF sp=$W6_SPIN_US
                for c in $corder; do
                    case $c in
                        goshm) run_ipc "$w" "$c" "$B/bench-chan" --workload="$w" --socket "$SOCK" --scale "$sc" --spin-us "$sp" ;;
                        boost-mq) run_ipc "$w" "$c" "$B/bench-mq-boost" --workload="$w" --scale "$sc" --spin-us "$sp" ;;
                        iceoryx) run_ipc "$w" "$c" "$B/bench-w3-iceoryx" --workload="$w" --scale "$sc" --spin-us "$sp" ;;
                    esac
                done ;;
            R)
                run_r busy 0 "$R_BUSY"
                [ "$R_IDLE1" -gt 0 ] && run_r "idle 1 ms" 1000 "$R_IDLE1"
                [ "$R_IDLE100" -gt 0 ] && run_r "idle 100 ms" 100000 "$R_IDLE100" ;;
        esac
    done
done
if ! kill -0 "$DPID" 2>/dev/null; then note "run-service.sh: goshmd died during the runs; see $OUT/goshmd.log"; FAIL=1; fi

# ---- the table -------------------------------------------------------------------

echo
echo "### bench/run-service.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), goshm $GOSHM_REV${LABEL:+ ($LABEL)}, $(nproc) CPUs, RUNS=$RUNS SCALE=$SCALE"
echo
echo "Installed libgoshm.so + goshmd; $TLS_CALLS calls to __tls_get_addr in libgoshm.so. Median (min–max) of $RUNS runs."
echo "goshm/peer: goshm's median over the peer's (below 1: goshm faster or smaller). pp: cache-line round trip"
echo "CPU 0 <-> CPU 1 measured just before each cross-core run, median (max); FLAG: some run's pp > $PP_FLAG_NS ns."
case " $WORKLOADS " in *" W5 "*|*" W6 "*)
    echo "W5: 1 subscriber, $(awk -v s="$SCALE" 'BEGIN { printf "%d", 2000000 * s }') messages a run, wait spin-us $W5_SPIN_US;" \
         "W6: 1 publisher, 4 subscribers, $(awk -v s="$W6_EFF" 'BEGIN { printf "%d", 1000000 * s }') buffers a run" \
         "(scale $W6_EFF of BENCHMARKS.md's 1M), wait spin-us $W6_SPIN_US. messages/s rows: goshm/peer above 1 = goshm faster." ;;
esac
echo
"$HERE/summarize.awk" -v flag="$PP_FLAG_NS" -v batch="$BATCH" "$RESULTS"
echo
note "results: $RESULTS (plots: bench/plot.sh $RESULTS)"
[ $FAIL = 0 ] || note "run-service.sh: some checks FAILED (see above)"
exit $FAIL
