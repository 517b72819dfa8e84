#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-engine.sh: run bench-engine for every allocator and workload, print a
# markdown table of medians (min–max) and goshm/peer ratios.
#
#   bench/run-engine.sh BUILD_DIR
#
# Environment:
#   RUNS=5                        runs per allocator and workload
#   SCALE=1                       --scale passed to bench-engine (shrinks counts)
#   WORKLOADS="W1 W2 W4a W4b"
#   ALLOCS="goshm glibc jemalloc tcmalloc mimalloc"
#   JEMALLOC_SO=, TCMALLOC_SO=    paths to preload (default: searched)
#   OUT=DIR                       where raw logs go (default: a new /tmp dir)
#
# jemalloc and tcmalloc replace malloc: they are measured by running the
# binary's --alloc=libc mode under LD_PRELOAD; every such run's own report of
# which library provides malloc is checked. Runs are interleaved (round r of
# every allocator before round r+1 of any) so that the noise of a shared
# machine spreads over all of them; each run is a fresh process. Compare
# ratios within one invocation, never absolute figures across invocations.
set -u

BUILD=${1:?usage: run-engine.sh BUILD_DIR}
BIN=$BUILD/bench/bench-engine
[ -x "$BIN" ] || { echo "run-engine.sh: $BIN not found; build it with: cmake --build $BUILD --target bench-engine" >&2; exit 2; }
RUNS=${RUNS:-5}
SCALE=${SCALE:-1}
WORKLOADS=${WORKLOADS:-"W1 W2 W4a W4b"}
ALLOCS=${ALLOCS:-"goshm glibc jemalloc tcmalloc mimalloc"}
OUT=${OUT:-$(mktemp -d /tmp/bench-engine.XXXXXX)}
mkdir -p "$OUT"

note() { echo "$*" >&2; }

# ---- which malloc provides what ------------------------------------------

# The library bench-engine reports as providing malloc when run with preload $1.
provider() {
    LD_PRELOAD=${1:-} "$BIN" --alloc=libc --workload=W1 --runs 1 --scale 0.0001 2>/dev/null |
        sed -n 's/^# alloc=libc: malloc from //p'
}

multiarch() {
    gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null ||
        echo "$(uname -m)-linux-gnu"
}

# find_preload SONAME...: first candidate that, preloaded, really provides malloc.
find_preload() {
    local ma; ma=$(multiarch)
    local so dir cand
    for so in "$@"; do
        for cand in $( (ldconfig -p 2>/dev/null | awk -v s="$so" '$1 == s { print $NF }'
                        for dir in /usr/lib/$ma /lib/$ma /usr/lib64 /lib64 /usr/lib /usr/local/lib; do
                            [ -e "$dir/$so" ] && echo "$dir/$so"
                        done) | awk '!seen[$0]++'); do
            case $(provider "$cand") in
                *"${so%%.so*}"*) echo "$cand"; return 0 ;;
            esac
        done
    done
    return 1
}

declare -A PRELOAD
avail=""
for a in $ALLOCS; do
    case $a in
        goshm) avail="$avail $a" ;;
        glibc)
            p=$(provider "")
            case $p in
                *libc.so*) avail="$avail $a" ;;
                *) note "glibc: skipped: malloc in bench-engine binds to '$p', not the C library" ;;
            esac ;;
        jemalloc)
            if [ -n "${JEMALLOC_SO:-}" ] || JEMALLOC_SO=$(find_preload libjemalloc.so.2 libjemalloc.so); then
                PRELOAD[$a]=$JEMALLOC_SO; avail="$avail $a"
            else note "jemalloc: skipped: libjemalloc.so.2 not installed (Debian: libjemalloc2)"; fi ;;
        tcmalloc)
            if [ -n "${TCMALLOC_SO:-}" ] || TCMALLOC_SO=$(find_preload libtcmalloc_minimal.so.4 libtcmalloc.so.4); then
                PRELOAD[$a]=$TCMALLOC_SO; avail="$avail $a"
            else note "tcmalloc: skipped: libtcmalloc_minimal.so.4 not installed (Debian: libtcmalloc-minimal4)"; fi ;;
        mimalloc)
            "$BIN" --alloc=mimalloc --workload=W1 --runs 1 --scale 0.0001 >/dev/null 2>&1
            case $? in
                0) avail="$avail $a" ;;
                *) note "mimalloc: skipped: bench-engine was built without it (install libmimalloc-dev, reconfigure)" ;;
            esac ;;
        *) note "unknown allocator '$a' ignored" ;;
    esac
done

note "bench-engine: $BIN; runs $RUNS, scale $SCALE; logs in $OUT"
for a in $avail; do
    case $a in jemalloc|tcmalloc) note "  $a: LD_PRELOAD=${PRELOAD[$a]}" ;; esac
done

# ---- the runs ----------------------------------------------------------------

failed=0
for r in $(seq 1 "$RUNS"); do
    for w in $WORKLOADS; do
        for a in $avail; do
            log=$OUT/$w.$a.log
            mode=libc
            case $a in goshm|mimalloc) mode=$a ;; esac
            note "round $r/$RUNS: $w $a"
            out=$(LD_PRELOAD=${PRELOAD[$a]:-} "$BIN" --alloc="$mode" --workload="$w" --runs 1 --scale "$SCALE" 2>&1)
            rc=$?
            printf '%s\n' "$out" >>"$log"
            if [ $rc -ne 0 ] || ! printf '%s\n' "$out" | grep -q '^summary .*check=ok'; then
                note "  FAILED (exit $rc): see $log"
                failed=$((failed + 1))
                continue
            fi
            if [ -n "${PRELOAD[$a]:-}" ] && ! printf '%s\n' "$out" | grep -q "^# alloc=libc: malloc from .*$a"; then
                note "  WARNING: the preload of ${PRELOAD[$a]} did not take: $(printf '%s\n' "$out" | grep '^# alloc')"
                failed=$((failed + 1))
            fi
        done
    done
done

# ---- the table ---------------------------------------------------------------

# values W A KEY: the KEY= field of every successful run line of A on W.
values() {
    [ -f "$OUT/$1.$2.log" ] || return 0
    awk -v k="$3" '/^run / && / check=ok/ { for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' \
        "$OUT/$1.$2.log"
}

# stat: "median min max n" of numbers on stdin (empty when none).
stat() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit;
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
        print m, v[1], v[NR], NR }'
}

fmt() { awk -v x="$1" -v d="$2" 'BEGIN { printf("%." d "f", x) }'; }

# row LABEL W KEY DECIMALS RATIO(yes/no) [ALLOC_OVERRIDE_KEY_FOR_GOSHM]
row() {
    local label=$1 w=$2 key=$3 dec=$4 ratio=$5
    local g; g=$(values "$w" goshm "$key" | stat)
    local gm=${g%% *}
    local a s m lo hi n rat name
    for a in $avail; do
        s=$(values "$w" "$a" "$key" | stat)
        [ -n "$s" ] || continue
        read -r m lo hi n <<<"$s"
        name=$a
        rat="—"
        if [ "$ratio" = yes ] && [ "$a" != goshm ] && [ -n "$gm" ]; then
            rat=$(awk -v g="$gm" -v p="$m" 'BEGIN { if (p > 0) printf("%.2f", g / p); else print "—" }')
        fi
        echo "| $label | $name | $(fmt "$m" "$dec") | $(fmt "$lo" "$dec")–$(fmt "$hi" "$dec") | $n | $rat |"
        if [ "$a" = goshm ] && [ "$key" = kept_pct ]; then
            s=$(values "$w" goshm kept_scav_pct | stat)
            [ -n "$s" ] && { read -r m lo hi n <<<"$s"
                echo "| $label | goshm, after collect + scavenge | $(fmt "$m" "$dec") | $(fmt "$lo" "$dec")–$(fmt "$hi" "$dec") | $n | — |"; }
        fi
    done
}

echo
echo "### bench-engine, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n), $(nproc) CPUs, RUNS=$RUNS SCALE=$SCALE"
echo
echo "goshm/peer: goshm's median over the peer's; above 1 means goshm is slower (or uses more memory)."
echo
echo "| workload | allocator | median | min–max | runs | goshm/peer |"
echo "|---|---|---|---|---|---|"
for w in $WORKLOADS; do
    case $w in
        W1) row "W1 ns/pair" W1 ns 1 yes ;;
        W2) row "W2 ns/object" W2 ns 0 yes
            row "W2 peak RSS / requested" W2 peak_rss_ratio 2 yes
            row "W2 usable / requested" W2 usable_ratio 3 yes
            row "W2 RSS kept after freeing all, %" W2 kept_pct 0 no ;;
        W4a) row "W4a ns/pair (2 threads, aggregate)" W4a ns 1 yes ;;
        W4b) row "W4b ns/object" W4b ns 0 yes ;;
    esac
done
echo

# Two-thread workloads need two CPUs: flag runs where the process did not use
# them (another job held a CPU, or the allocator made a thread block on a lock).
for w in $WORKLOADS; do
    case $w in W4a|W4b) ;; *) continue ;; esac
    for a in $avail; do
        [ -f "$OUT/$w.$a.log" ] || continue
        low=$(awk '/^cpu / { for (i = 1; i <= NF; i++) if ($i ~ /^util=/ && substr($i, 6) + 0 < 1.5) n++ } END { print n + 0 }' "$OUT/$w.$a.log")
        [ "$low" -gt 0 ] && echo "note: $w $a: $low run(s) had CPU/wall < 1.5, i.e. the two threads did not both run all the time (a busy machine, or blocking in the allocator)"
    done
done
[ "$failed" -gt 0 ] && { echo "note: $failed run(s) failed or were rejected; see $OUT"; exit 1; }
exit 0
