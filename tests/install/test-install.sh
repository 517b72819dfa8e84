#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: `cmake --install` lays out what the contract says, and a
# project outside the tree builds against it with find_package(goshm) and
# with pkg-config, and runs against a real goshmd.
#   test-install.sh BUILD_DIR SOURCE_DIR [MORE]
# MORE, a script, runs as `sh MORE PREFIX SOCKET SOURCE_DIR` while the
# installed goshmd serves SOCKET (tests/package/test-examples.sh).
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/goshm-install.XXXXXX)
trap 'kill "$daemon" 2>/dev/null || true; rm -rf "$tmp"' EXIT
daemon=
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
fail=0
for f in bin/goshmd bin/goshmctl include/goshm/goshm.h; do
  [ -e "$tmp/prefix/$f" ] || { echo "missing $f"; fail=1; }
done
for pat in 'lib*/libgoshm.so' 'lib*/libgoshm.a' 'lib*/pkgconfig/goshm.pc' 'lib*/cmake/goshm/goshmConfig.cmake' \
           'lib/systemd/system/goshmd.service' 'lib/systemd/system/goshmd.socket'; do
  # shellcheck disable=SC2086
  ls $tmp/prefix/$pat >/dev/null 2>&1 || { echo "missing $pat"; fail=1; }
done
[ $fail -eq 0 ] || exit 1
# find_package
cmake -S "$src/tests/install" -B "$tmp/c" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/c" >/dev/null
"$tmp/c/consumer" || { echo "consumer without daemon: exit $?"; exit 1; }
"$tmp/c/consumer_static" || { echo "static consumer without daemon: exit $?"; exit 1; }
# pkg-config
libdir=$(dirname "$(ls -d "$tmp"/prefix/lib*/pkgconfig)")
PKG_CONFIG_PATH="$libdir/pkgconfig" cc -o "$tmp/pc" "$src/tests/install/consumer.c" \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs goshm) -Wl,-rpath,"$libdir"
# against the installed daemon
"$tmp/prefix/bin/goshmd" --socket "$tmp/d.sock" --size 256M --log-level warn &
daemon=$!
"$tmp/prefix/bin/goshmctl" --socket "$tmp/d.sock" wait
"$tmp/pc" "$tmp/d.sock" || { echo "pkg-config consumer with daemon: exit $?"; exit 1; }
"$tmp/c/consumer" "$tmp/d.sock" || { echo "find_package consumer with daemon: exit $?"; exit 1; }
if [ $# -ge 3 ]; then
  sh "$3" "$tmp/prefix" "$tmp/d.sock" "$src" || { echo "$3: exit $?"; exit 1; }
fi
kill -TERM "$daemon"
wait "$daemon" || { echo "goshmd did not exit cleanly"; exit 1; }
daemon=
echo "test-install: 1 passed, 0 failed"
