#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: the installed Python module: found under PREFIX's
# dist-packages, imported from there (not from the build tree), attached to
# the installed goshmd, and the whole tests/python suite run against it with
# the installed goshmd and goshmctl and a C producer built against the
# installed library with pkg-config.
# Run by tests/install/test-install.sh, which installs the build to PREFIX
# and starts the installed goshmd on SOCKET:
#   test-install.sh BUILD_DIR SOURCE_DIR tests/python/test-installed.sh
#   -> sh test-installed.sh PREFIX SOCKET SOURCE_DIR
# $GOSHM_PYTHON: the interpreter the module was built for (ctest sets it).
set -eu
prefix=$1
sock=$2
src=$3
py=${GOSHM_PYTHON:-/usr/bin/python3}
# shellcheck disable=SC2086
set -- $prefix/lib/python3*/dist-packages/goshm*.so
[ $# -eq 1 ] && [ -f "$1" ] || { echo "test-installed: want one goshm*.so under $prefix/lib/python3*/dist-packages: $*"; exit 1; }
mod=$1
dir=$(dirname "$mod")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/goshm-pyinst.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# From the installed directory, with no LD_LIBRARY_PATH: the module's RUNPATH
# finds the prefix's libgoshm.so.
env -u LD_LIBRARY_PATH PYTHONPATH="$dir" PYTHONDONTWRITEBYTECODE=1 GOSHM_SOCKET="$sock" "$py" -c "
import goshm, os, sys
assert os.path.realpath(goshm.__file__) == os.path.realpath('$mod'), goshm.__file__
with goshm.attach() as h:
    assert h.heap_id != 0
    with h.buf_alloc(100) as b:
        memoryview(b)[:5] = b'hello'
        assert bytes(memoryview(b)[:5]) == b'hello'
print('test-installed: imported', goshm.__file__)
" || { echo "test-installed: the installed module failed"; exit 1; }

pcdir=$(ls -d "$prefix"/lib*/pkgconfig "$prefix"/lib/*/pkgconfig 2>/dev/null | head -n 1)
libdir=$(dirname "$pcdir")
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -Werror -o "$tmp/producer" "$src/tests/python/producer.c" \
  $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs goshm) -Wl,-rpath,"$libdir"

env -u LD_LIBRARY_PATH PYTHONPATH="$dir" PYTHONDONTWRITEBYTECODE=1 GOSHMD="$prefix/bin/goshmd" \
  GOSHMCTL="$prefix/bin/goshmctl" GOSHM_PY_PRODUCER="$tmp/producer" \
  "$py" -m pytest -q -p no:cacheprovider --rootdir "$src/tests/python" "$src/tests/python" ||
  { echo "test-installed: pytest failed against the installed module"; exit 1; }
