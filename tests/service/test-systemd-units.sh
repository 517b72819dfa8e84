#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: systemd-analyze verify on the generated goshmd.service and
# goshmd.socket (systemd/), then on every unit an install into a temporary
# prefix puts down (system and user units), and systemd-analyze security
# --offline on the installed system service: its exposure must stay below
# GOSHM_EXPOSURE_MAX (measured 1.1 with the hardening, 5.3 before it). Overview of the engine: shm/overview.h.
#
# Usage: test-systemd-units.sh UNIT_DIR GOSHMD
#   UNIT_DIR  the build directory holding the generated units
#   GOSHMD    the built daemon: the test copy of the service runs it instead
#             of the install path, so verify checks a binary that exists.
# Exit: 0 pass, 1 fail, 77 skipped (no systemd-analyze).
set -u

unit_dir=${1:?usage: test-systemd-units.sh UNIT_DIR GOSHMD}
goshmd=${2:?usage: test-systemd-units.sh UNIT_DIR GOSHMD}

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "test-systemd-units: systemd-analyze not found: skipped"
    exit 77
fi
for f in "$unit_dir/goshmd.service" "$unit_dir/goshmd.socket" "$goshmd"; do
    if [ ! -e "$f" ]; then
        echo "test-systemd-units: missing $f"
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/goshm-units.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

fail=0
check() { # what, command...
    what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        fail=1
    fi
}

# The generated ExecStart must name the installed goshmd with the socket of
# the .socket unit; the test copy swaps in the built binary.
check "ExecStart points at an absolute goshmd" \
    grep -Eq '^ExecStart=/[^ ]*/goshmd --socket /run/goshm/goshmd\.sock --fd-store --allow-gid goshm-users$' "$unit_dir/goshmd.service"
check "the heap goes to the fd store" grep -q '^FileDescriptorStoreMax=2$' "$unit_dir/goshmd.service"
check "no unsubstituted @VARS@" sh -c "! grep -q '@[A-Z_]*@' '$unit_dir/goshmd.service'"
check "Type=notify" grep -qx 'Type=notify' "$unit_dir/goshmd.service"
check "socket unit listens for SEQPACKET on the service's path" \
    grep -qx 'ListenSequentialPacket=/run/goshm/goshmd.sock' "$unit_dir/goshmd.socket"

goshmd_abs=$(cd "$(dirname "$goshmd")" && pwd)/$(basename "$goshmd")
sed "s|^ExecStart=/[^ ]*/goshmd |ExecStart=$goshmd_abs |" "$unit_dir/goshmd.service" >"$tmp/goshmd.service"
cp "$unit_dir/goshmd.socket" "$tmp/goshmd.socket"

# verify prints warnings it does not fail on; show everything, judge by the
# exit status, and also fail on lines about our own units.
out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
          "$tmp/goshmd.socket" "$tmp/goshmd.service" 2>&1)
rc=$?
[ -n "$out" ] && printf '%s\n' "$out"
check "systemd-analyze verify exits 0" [ "$rc" -eq 0 ]
check "no complaints about goshmd units" \
    sh -c "! printf '%s\n' \"\$1\" | grep -E '^[^ ]*goshmd\.(service|socket):'" sh "$out"

check "the socket belongs to goshm-users" grep -qx 'SocketGroup=goshm-users' "$unit_dir/goshmd.socket"
check "sysusers.d makes goshm-users" grep -qx 'g goshm-users -' "$unit_dir/goshm.sysusers"
check "user socket is the clients' default path" \
    grep -qx 'ListenSequentialPacket=%t/goshm/goshmd.sock' "$unit_dir/user/goshmd.socket"
check "user service runs as the user" sh -c "! grep -q '^DynamicUser=' '$unit_dir/user/goshmd.service'"

# Install into a temporary prefix (UNIT_DIR is BUILD/systemd) and verify
# what lands there, ExecStart naming the installed goshmd.
build=$(cd "$unit_dir/.." && pwd)
prefix=$tmp/prefix
if cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
    echo "ok: cmake --install into $prefix"
else
    cat "$tmp/install.log"
    echo "FAIL: cmake --install"
    fail=1
fi
sys=$prefix/lib/systemd/system
usr=$prefix/lib/systemd/user
check "installed ExecStart names the prefix" grep -q "^ExecStart=$prefix/bin/goshmd " "$sys/goshmd.service"
check "installed user ExecStart names the prefix" grep -q "^ExecStart=$prefix/bin/goshmd " "$usr/goshmd.service"
check "sysusers.d snippet installed" grep -qx 'g goshm-users -' "$prefix/lib/sysusers.d/goshm.conf"
out=$(cd "$sys" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./goshmd.socket ./goshmd.service 2>&1)
rc=$?
[ -n "$out" ] && printf '%s\n' "$out"
check "verify of the installed system units" [ "$rc" -eq 0 ]
check "no complaints about installed system units" \
    sh -c "! printf '%s\n' \"\$1\" | grep -E 'goshmd\.(service|socket):'" sh "$out"
mkdir -p "$tmp/xdg" && chmod 700 "$tmp/xdg"
out=$(cd "$usr" && XDG_RUNTIME_DIR=$tmp/xdg SYSTEMD_LOG_LEVEL=notice \
          systemd-analyze --user verify --man=no ./goshmd.socket ./goshmd.service 2>&1)
rc=$?
[ -n "$out" ] && printf '%s\n' "$out"
check "verify of the installed user units" [ "$rc" -eq 0 ]
check "no complaints about installed user units" \
    sh -c "! printf '%s\n' \"\$1\" | grep -E 'goshmd\.(service|socket):'" sh "$out"

# Exposure score (0 best .. 10). --offline needs systemd >= 250.
max=${GOSHM_EXPOSURE_MAX:-1.5}
score=$(cd "$sys" && systemd-analyze security --offline=yes ./goshmd.service 2>/dev/null |
        sed -n 's/.*Overall exposure level for goshmd.service: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
    echo "skip: systemd-analyze security --offline gave no score (systemd < 250?)"
else
    echo "exposure of the system goshmd.service: $score (threshold $max)"
    check "exposure $score below $max" awk -v s="$score" -v m="$max" 'BEGIN { exit !(s < m) }'
fi
uscore=$(cd "$usr" && XDG_RUNTIME_DIR=$tmp/xdg systemd-analyze --user security --offline=yes ./goshmd.service 2>/dev/null |
         sed -n 's/.*Overall exposure level for goshmd.service: \([0-9.]*\).*/\1/p')
[ -n "$uscore" ] && echo "exposure of the user goshmd.service: $uscore (not asserted)"

if [ "$fail" -eq 0 ]; then
    echo "test-systemd-units: passed"
else
    echo "test-systemd-units: FAILED"
fi
exit "$fail"
