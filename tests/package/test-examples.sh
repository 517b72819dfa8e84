#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: the installed examples (PREFIX/share/doc/goshm/examples) build
# as a user would build them, with pkg-config (their Makefile) and with
# find_package (their CMakeLists.txt), and run against a real goshmd; the
# installed man pages are found by man, links included.
# Run by tests/install/test-install.sh, which installs the build to PREFIX
# and starts the installed goshmd on SOCKET:
#   test-install.sh BUILD_DIR SOURCE_DIR tests/package/test-examples.sh
#   -> sh test-examples.sh PREFIX SOCKET SOURCE_DIR
set -eu
prefix=$1
sock=$2
ex=$prefix/share/doc/goshm/examples
for f in hello.c prodcons.c channel.c CMakeLists.txt Makefile; do
  [ -f "$ex/$f" ] || { echo "test-examples: $ex/$f not installed"; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/goshm-examples.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# pkg-config: the Makefile, from a copy (the installed directory stays clean).
cp -r "$ex" "$tmp/pc"
pcdir=$(ls -d "$prefix"/lib*/pkgconfig "$prefix"/lib/*/pkgconfig 2>/dev/null | head -n 1)
make -s -C "$tmp/pc" PKG_CONFIG_PATH="$pcdir" CFLAGS="-O2 -Wall -Wextra -Werror" >/dev/null
# find_package
cmake -S "$ex" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >/dev/null
cmake --build "$tmp/cm" >/dev/null

for kind in pc cm; do
  out=$("$tmp/$kind/hello" "$sock") || { echo "test-examples: $kind hello: exit $?"; exit 1; }
  echo "$out" | grep -q '^hello from shared memory (offset [1-9]' || { echo "test-examples: $kind hello said: $out"; exit 1; }
  out=$("$tmp/$kind/prodcons" "$sock" 20000) || { echo "test-examples: $kind prodcons: exit $?"; exit 1; }
  echo "$out" | grep -q '^prodcons: 20000 messages, [0-9]* bytes, every byte checked$' ||
    { echo "test-examples: $kind prodcons said: $out"; exit 1; }
  out=$("$tmp/$kind/channel" "$sock") || { echo "test-examples: $kind channel: exit $?"; exit 1; }
  echo "$out" | grep -q '^channel: 5 buffers passed and released$' || { echo "test-examples: $kind channel said: $out"; exit 1; }
done
# The socket from the environment, as goshm_attach(NULL) reads it.
GOSHM_SOCKET=$sock "$tmp/pc/hello" >/dev/null || { echo "test-examples: hello with \$GOSHM_SOCKET failed"; exit 1; }
# A daemon that is not there: a clear failure, not a hang or a crash.
if out=$("$tmp/pc/hello" "$tmp/nobody.sock" 2>&1); then
  echo "test-examples: hello without a daemon succeeded"; exit 1
fi
echo "$out" | grep -q 'goshm_attach: No such file or directory' || { echo "test-examples: hello without a daemon said: $out"; exit 1; }

# The installed man pages, as `man NAME` finds them under this prefix.
if man --version >/dev/null 2>&1; then # not the stub of minimized images
  for page in goshmd goshmctl goshm goshm_malloc goshm_off; do
    MANWIDTH=80 man -M "$prefix/share/man" "$page" 2>/dev/null | grep -q 'goshm' ||
      { echo "test-examples: man -M $prefix/share/man $page finds nothing"; exit 1; }
  done
fi
echo "test-examples: hello, prodcons and channel built with pkg-config and find_package, run against goshmd; man pages found"
