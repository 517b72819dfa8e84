#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: systemd-analyze verify on the generated goshmd.service and
# goshmd.socket (systemd/). Overview of the engine: shm/overview.h.
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
    grep -Eq '^ExecStart=/[^ ]*/goshmd --socket /run/goshm/goshmd\.sock --fd-store$' "$unit_dir/goshmd.service"
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

if [ "$fail" -eq 0 ]; then
    echo "test-systemd-units: passed"
else
    echo "test-systemd-units: FAILED"
fi
exit "$fail"
