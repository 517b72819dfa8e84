# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034  # SVC_ARGV is read by the sourcing script
# service-lib.sh: what bench/run-service.sh and bench/run-ab.sh share, sourced
# by both (bash): building bench/service against an installed goshm, the
# commands of W3 and R, their checks, and the cache-line ping-pong. One copy,
# so that an A/B run measures exactly what run-service.sh measures.

SVC_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) # bench/

# svc_build SRC DIR LOG: configure SRC (RelWithDebInfo, no tests, no benches),
# build it, `cmake --install` it into DIR/prefix, and build bench/service
# against that prefix into DIR/bench. Output to LOG; status 1 on failure.
svc_build() {
    local src=$1 dir=$2 log=$3
    # shellcheck disable=SC2015  # any failing step reports the failure
    cmake -S "$src" -B "$dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOSHM_BUILD_TESTS=OFF \
          -DGOSHM_BUILD_BENCH=OFF >"$log" 2>&1 &&
    cmake --build "$dir/build" -j2 >>"$log" 2>&1 &&
    cmake --install "$dir/build" --prefix "$dir/prefix" >>"$log" 2>&1 &&
    cmake -S "$SVC_HERE/service" -B "$dir/bench" -DCMAKE_PREFIX_PATH="$dir/prefix" >>"$log" 2>&1 &&
    cmake --build "$dir/bench" -j2 >>"$log" 2>&1
}

# svc_field KEY LINE: the value of KEY=value in a "run ..." line.
svc_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2" | head -1; }

# svc_pp BENCHDIR: ns per cache-line round trip between two threads pinned to
# CPU 0 and CPU 1 (bench-alloc --workload=PP, 200k round trips); empty if it
# failed. Taken just before every cross-core run: a high figure means another
# job held one of the CPUs, so both sides of the run often shared one core.
svc_pp() {
    local line
    line=$("$1/bench-alloc" --alloc=libc --workload=PP --scale 0.2 2>/dev/null | grep '^run ')
    svc_field pp_ns "$line"
}

# svc_w3_argv CONFIG BENCHDIR SOCKET SCALE: sets SVC_ARGV to the W3 command of
# CONFIG: goshm-K<k> (bench-ipc, batch k), boost-K<k> (bench-ipc-boost),
# iceoryx (bench-w3-iceoryx). Status 1 for an unknown configuration.
svc_w3_argv() {
    case $1 in
        goshm-K*) SVC_ARGV=("$2/bench-ipc" --workload=W3 --socket "$3" --scale "$4" --batch "${1#goshm-K}") ;;
        boost-K*) SVC_ARGV=("$2/bench-ipc-boost" --scale "$4" --batch "${1#boost-K}") ;;
        iceoryx) SVC_ARGV=("$2/bench-w3-iceoryx" --scale "$4") ;;
        *) return 1 ;;
    esac
}

# svc_ipc_ok LINE: status 0 if a cross-process run's last "run" line passed
# its checks: ok, no errors, and every subscriber checked every message:
# checked = subscribers x (messages + warm-up).
svc_ipc_ok() {
    local ok checked msgs warm subs
    ok=$(svc_field ok "$1"); [ -n "$ok" ] || { [ "$(svc_field check "$1")" = ok ] && ok=1; }
    checked=$(svc_field checked "$1"); msgs=$(svc_field messages "$1"); warm=$(svc_field warmup "$1")
    subs=$(svc_field subscribers "$1"); subs=${subs:-1}
    [ "$ok" = 1 ] && [ "$(svc_field errors "$1")" = 0 ] && [ -n "$msgs" ] &&
        [ "$checked" = "$((subs * (msgs + warm)))" ]
}

# svc_r_argv BENCHDIR SOCKET SAMPLES GAP_US: sets SVC_ARGV to R's command:
# small (REFILL) and large (LARGE_ALLOC) round trips, GAP_US of idle before
# each sample (0: busy). It prints two "run" lines (kind=small, kind=large).
svc_r_argv() { SVC_ARGV=("$1/bench-ipc" --workload=R --socket "$2" --samples "$3" --gap-us "$4"); }

# svc_r_busy_samples SCALE: busy R's sample count, 20000 x SCALE, at least 200.
svc_r_busy_samples() { awk -v s="$1" 'BEGIN { n = int(20000 * s); print (n < 200 ? 200 : n) }'; }
