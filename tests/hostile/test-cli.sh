#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: bad input on goshmd's and goshmctl's command lines and in
# goshmd's config file (issue 7, point 11). Every bad input exits 2 at parse
# time, before anything starts, with a message that names the problem; the
# good forms next to them work (quoted config values, user and group names,
# GOSHM_SOCKET for the daemon, goshmctl --timeout 0 against a live daemon).
#
# Usage: test-cli.sh GOSHMD GOSHMCTL
# Exit: 0 pass, 1 fail.
set -u

goshmd=${1:?usage: test-cli.sh GOSHMD GOSHMCTL}
goshmctl=${2:?usage: test-cli.sh GOSHMD GOSHMCTL}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/goshm-cli.XXXXXX") || exit 1
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

# refused WHAT PATTERN command...: exit 2, stderr matches PATTERN (grep -E),
# and nothing was started (the command returns at once).
refused() {
    what=$1 pattern=$2
    shift 2
    timeout 10 "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 2 ]; then
        bad "$what: exit $rc, want 2 ($(head -c 300 "$tmp/err"))"
    elif ! grep -Eq -- "$pattern" "$tmp/err"; then
        bad "$what: message '$(head -c 300 "$tmp/err")' does not match '$pattern'"
    else
        ok "$what: $(head -n 1 "$tmp/err")"
    fi
}

# --- goshmd: sizes ------------------------------------------------------------
refused "--size 2^64-1" "size.*18446744073709551615.*(range|at most)" \
    "$goshmd" --socket "$tmp/s.sock" --size 18446744073709551615
refused "--size 2^64 (overflows strtoull)" "size.*18446744073709551616" \
    "$goshmd" --socket "$tmp/s.sock" --size 18446744073709551616
refused "--size 65T" "size.*65T.*64T" "$goshmd" --socket "$tmp/s.sock" --size 65T
refused "--size 1K names the minimum" "size.*1K.*64M" "$goshmd" --socket "$tmp/s.sock" --size 1K
refused "--size 0" "size.*'0'" "$goshmd" --socket "$tmp/s.sock" --size 0
refused "--size -1" "size.*-1" "$goshmd" --socket "$tmp/s.sock" --size -1
refused "--size 1X" "size.*1X" "$goshmd" --socket "$tmp/s.sock" --size 1X
refused "--size without a value" "size.*needs a value" "$goshmd" --size
"$goshmd" --help >"$tmp/help" 2>&1 || bad "--help exits non-zero"
grep -q "At least 64M, at most 64T" "$tmp/help" && grep -q "rounded up to whole 64 MiB arenas" "$tmp/help" &&
    ok "--help states the size unit and limits" || bad "--help lacks the size rules"
grep -q "Config file:" "$tmp/help" && grep -q "quoted" "$tmp/help" && ok "--help documents the config syntax" ||
    bad "--help lacks the config syntax"
grep -q "GOSHM_SOCKET" "$tmp/help" && ok "--help documents GOSHM_SOCKET" || bad "--help lacks GOSHM_SOCKET"
grep -q "Exit status" "$tmp/help" && ok "--help documents the exit status" || bad "--help lacks the exit status"

# --- goshmd: options ----------------------------------------------------------
refused "goshmd -x" "unknown option -x" "$goshmd" -x
refused "goshmd -x points to --help" "goshmd --help" "$goshmd" -x
refused "goshmd --frobnicate" "unknown option --frobnicate" "$goshmd" --frobnicate
refused "goshmd stray argument" "unexpected argument 'stray'" "$goshmd" stray
refused "--max-clients 0" "max-clients.*'0'" "$goshmd" --max-clients 0
refused "--allow-uid unknown name" "allow-uid.*unknown user 'no-such-user-goshm'" \
    "$goshmd" --allow-uid no-such-user-goshm
refused "--allow-gid unknown name" "allow-gid.*unknown group 'no-such-group-goshm'" \
    "$goshmd" --allow-gid no-such-group-goshm
refused "--allow-uid empty entry" "allow-uid.*empty entry" "$goshmd" --allow-uid 0,,1
refused "--allow-uid 4294967295" "allow-uid.*bad id '4294967295'" "$goshmd" --allow-uid 4294967295

# --- goshmd: config files -----------------------------------------------------
refused "--config DIR" "$tmp.*is a directory" "$goshmd" --config "$tmp"
refused "--config missing" "nope.conf.*No such file" "$goshmd" --config "$tmp/nope.conf"
head -c 4096 "$goshmd" >"$tmp/binary.conf"
refused "--config binary file" "binary.conf.*not a text file" "$goshmd" --config "$tmp/binary.conf"
refused "--config /dev/zero" "not a regular file" "$goshmd" --config /dev/zero
printf 'socket = "/x/y.sock\n' >"$tmp/unmatched.conf"
refused "unmatched quote" "unmatched.conf:1: socket: unmatched quote" "$goshmd" --config "$tmp/unmatched.conf"
printf 'size = 1K\n' >"$tmp/small.conf"
refused "config size 1K" "small.conf:1: size.*64M" "$goshmd" --config "$tmp/small.conf"
printf 'sise = 1G\n' >"$tmp/typo.conf"
refused "config unknown name" "typo.conf:1: unknown option 'sise'" "$goshmd" --config "$tmp/typo.conf"

# A good config with quoted values, a '#' inside quotes, comments, names.
mkdir -p "$tmp/q#dir"
cat >"$tmp/good.conf" <<EOF
# a comment
socket = "$tmp/q#dir/quoted.sock"   # a comment after a quoted value
size = '64M'
allow-uid = root
allow-gid = "root"
log-level = warn
EOF
"$goshmd" --config "$tmp/good.conf" 2>"$tmp/good.err" &
gpid=$!
pids="$pids $gpid"
if "$goshmctl" --socket "$tmp/q#dir/quoted.sock" --timeout 10 wait; then
    ok "quoted config values: the daemon serves on the unquoted path"
else
    bad "quoted config values: no daemon on $tmp/q#dir/quoted.sock ($(cat "$tmp/good.err"))"
fi
"$goshmctl" --socket "$tmp/q#dir/quoted.sock" stats >"$tmp/stats" 2>&1 &&
    grep -q "64.0 MiB" "$tmp/stats" && ok "size = '64M' gave a 64 MiB heap" || bad "stats: $(head -c 300 "$tmp/stats")"

# goshmctl --timeout 0 against the live daemon: one try, success.
if "$goshmctl" --socket "$tmp/q#dir/quoted.sock" --timeout 0 wait 2>"$tmp/err"; then
    ok "goshmctl --timeout 0 wait against a live daemon"
else
    bad "goshmctl --timeout 0 wait: $(cat "$tmp/err")"
fi
"$goshmctl" --socket "$tmp/q#dir/quoted.sock" --timeout 0 stats >/dev/null 2>"$tmp/err" &&
    ok "goshmctl --timeout 0 stats" || bad "goshmctl --timeout 0 stats: $(cat "$tmp/err")"
kill "$gpid"
wait "$gpid" && ok "the daemon stopped cleanly" || bad "the daemon did not stop cleanly"

# goshmctl --timeout 0 against no daemon: fails at once, exit 1.
start=$(date +%s)
"$goshmctl" --socket "$tmp/none.sock" --timeout 0 wait 2>/dev/null
rc=$?
[ "$rc" -eq 1 ] && [ $(( $(date +%s) - start )) -le 2 ] && ok "goshmctl --timeout 0 wait without a daemon: exit 1 at once" ||
    bad "goshmctl --timeout 0 wait without a daemon: exit $rc"

# --- goshmd: GOSHM_SOCKET and the precedence ------------------------------------
GOSHM_SOCKET="$tmp/env.sock" "$goshmd" --size 64M 2>"$tmp/env.err" &
gpid=$!
pids="$pids $gpid"
if GOSHM_SOCKET="$tmp/env.sock" "$goshmctl" --timeout 10 wait; then
    ok "goshmd honours GOSHM_SOCKET"
else
    bad "goshmd ignored GOSHM_SOCKET ($(cat "$tmp/env.err"))"
fi
kill "$gpid"
wait "$gpid"
GOSHM_SOCKET="$tmp/env.sock" "$goshmd" --size 64M --socket "$tmp/argv.sock" 2>"$tmp/env.err" &
gpid=$!
pids="$pids $gpid"
if "$goshmctl" --socket "$tmp/argv.sock" --timeout 10 wait && [ ! -e "$tmp/env.sock" ]; then
    ok "--socket wins over GOSHM_SOCKET"
else
    bad "--socket does not win over GOSHM_SOCKET ($(cat "$tmp/env.err"))"
fi
kill "$gpid"
wait "$gpid"

# --- goshmctl -----------------------------------------------------------------
refused "goshmctl --timeout -1" "bad --timeout.*-1" "$goshmctl" --timeout -1 wait
refused "goshmctl --timeout nan" "bad --timeout.*nan" "$goshmctl" --timeout nan wait
refused "goshmctl --timeout 1e99" "bad --timeout.*1e99" "$goshmctl" --timeout 1e99 wait
refused "goshmctl --timeout x" "bad --timeout.*x" "$goshmctl" --timeout x wait
refused "goshmctl -x" "unknown option.*-x" "$goshmctl" -x wait
refused "goshmctl no command" "no command" "$goshmctl"
refused "goshmctl bad command" "unknown command.*frob" "$goshmctl" frob
refused "goshmctl empty socket" "empty socket path" "$goshmctl" --socket= wait

exit $fail
