#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# idle-cost.sh: what an idle or nearly idle goshmd costs the machine: its CPU
# time and context switches (wake-ups) over a window, with no client, and
# with one client that allocates now and then (bench-ipc's R workload with a
# gap between samples, which keeps the data plane's warm self wake-ups of
# daemon/dataplane.c going). Each PREFIX is an installed goshm (bin/goshmd)
# whose bench/service build is BENCH (bench-ipc); pairs are run in turn.
#
#   bench/idle-cost.sh PREFIX BENCH [PREFIX BENCH ...]
#   e.g. after bench/run-ab.sh: bench/idle-cost.sh WORK/A/prefix WORK/A/bench WORK/B/prefix WORK/B/bench
#
# Environment: SECONDS_EACH (10), GAP_US (20000: the client's pause between
# allocations). Prints one line per daemon and case: CPU ms over the window
# (utime + stime, in clock ticks of 10 ms), CPU %, context switches of all
# its threads per second.
set -u
SECONDS_EACH=${SECONDS_EACH:-10} GAP_US=${GAP_US:-20000}
[ $# -ge 2 ] && [ $(($# % 2)) -eq 0 ] || { echo "usage: idle-cost.sh PREFIX BENCH [PREFIX BENCH ...]" >&2; exit 2; }
TCK=$(getconf CLK_TCK)

# cpu_ticks PID: utime + stime of the process (all threads).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# ctx PID: voluntary + involuntary context switches, summed over its threads.
ctx() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ { n += $2 } END { print n }'; }

measure() { # label pid
    local c0 x0 c1 x1
    c0=$(cpu_ticks "$2") x0=$(ctx "$2")
    sleep "$SECONDS_EACH"
    c1=$(cpu_ticks "$2") x1=$(ctx "$2")
    awk -v l="$1" -v c=$((c1 - c0)) -v x=$((x1 - x0)) -v s="$SECONDS_EACH" -v t="$TCK" \
        'BEGIN { printf "%-40s cpu_ms=%d cpu_pct=%.2f ctxsw_per_s=%.0f\n", l, c * 1000 / t, c * 100 / t / s, x / s }'
}

while [ $# -ge 2 ]; do
    prefix=$1 bench=$2
    shift 2
    dir=$(mktemp -d /tmp/goshm-idle.XXXXXX)
    "$prefix/bin/goshmd" --socket "$dir/s" 2>"$dir/goshmd.log" &
    pid=$!
    "$prefix/bin/goshmctl" --socket "$dir/s" wait >/dev/null 2>&1 || { echo "goshmd did not answer" >&2; exit 1; }
    sleep 2 # past the warm period of its start
    measure "$prefix: no client" "$pid"
    n=$((SECONDS_EACH * 1000000 / GAP_US + 20))
    "$bench/bench-ipc" --workload=R --socket "$dir/s" --kind=small --gap-us "$GAP_US" --samples "$n" \
        >"$dir/client.log" 2>&1 &
    cl=$!
    sleep 1
    measure "$prefix: client allocating every ${GAP_US} us" "$pid"
    kill "$cl" 2>/dev/null
    wait "$cl" 2>/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null
    rm -rf "$dir"
done
