#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: the Debian package. Configures a build with prefix /usr,
# `cpack -G DEB`, checks the package (computed dependencies, files, the
# systemd units' ExecStart), installs it with dpkg -i, runs `goshmd --help`,
# starts goshmd on a temporary socket, builds the installed hello example
# with pkg-config and runs it against that daemon, imports the Python module
# (when built) with Debian's python3 and uses it, stops the daemon, removes
# the package and checks that its files are gone. Whatever fails, the trap
# stops the daemon and removes the package.
#   test-deb.sh SOURCE_DIR
# Exit: 0 pass, 1 fail, 77 skipped (not root, no dpkg, or goshm already
# installed on this machine: the test would replace and then remove it).
set -eu
src=${1:?usage: test-deb.sh SOURCE_DIR}
skip() { echo "test-deb: $*: skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (it installs a package)"
for t in dpkg dpkg-deb dpkg-shlibdeps cpack cmake pkg-config; do
  command -v "$t" >/dev/null 2>&1 || skip "$t not found (tools/install-deps.sh installs dpkg-dev)"
done
if dpkg-query -W -f='${Status}' goshm 2>/dev/null | grep -q 'installed'; then skip "a goshm package is installed"; fi
for f in /usr/bin/goshmd /usr/bin/goshmctl /usr/include/goshm; do
  [ ! -e "$f" ] || skip "$f exists (goshm installed from source)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/goshm-deb.XXXXXX")
daemon=
installed=0
cleanup() {
  rc=$?
  [ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true
  if [ $installed -eq 1 ]; then
    echo "test-deb: removing the package after a failure"
    dpkg --purge goshm >/dev/null 2>&1 || dpkg --purge --force-remove-reinstreq goshm >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fail() { echo "test-deb: $*"; exit 1; }

cmake -S "$src" -B "$tmp/b" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGOSHM_BUILD_TESTS=OFF -DGOSHM_BUILD_BENCH=OFF >/dev/null
cmake --build "$tmp/b" -j2 >/dev/null
(cd "$tmp/b" && cpack -G DEB >/dev/null) || fail "cpack -G DEB failed"
deb=$(ls "$tmp"/b/goshm_*.deb)

# The package, before installing it.
depends=$(dpkg-deb -f "$deb" Depends)
echo "test-deb: $(basename "$deb"): Depends: $depends"
for d in libc6 libprotobuf-c1; do
  echo "$depends" | grep -q "$d (>= " || fail "Depends lacks a versioned $d (dpkg-shlibdeps not run?)"
done
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' > "$tmp/contents"
for f in /usr/bin/goshmd /usr/bin/goshmctl /usr/include/goshm/goshm.h /lib/systemd/system/goshmd.service \
         /lib/systemd/system/goshmd.socket /usr/share/man/man8/goshmd.8 /usr/share/man/man1/goshmctl.1 \
         /usr/share/man/man3/goshm.3 /usr/share/man/man3/goshm_malloc.3 /usr/share/doc/goshm/examples/hello.c \
         /usr/share/doc/goshm/examples/prodcons.c /usr/share/doc/goshm/LICENSE; do
  grep -qx "$f" "$tmp/contents" || fail "the package lacks $f"
done
for pat in '/usr/lib/.*/libgoshm\.so\.0$' '/usr/lib/.*/libgoshm\.a$' '/usr/lib/.*/pkgconfig/goshm\.pc$' \
           '/usr/lib/.*/cmake/goshm/goshmConfig\.cmake$'; do
  grep -q "$pat" "$tmp/contents" || fail "the package lacks $pat"
done

installed=1
dpkg -i "$deb" >/dev/null || fail "dpkg -i failed"
dpkg-query -W -f='${Status}' goshm | grep -q 'install ok installed' || fail "dpkg does not list goshm as installed"
grep -q '^ExecStart=/usr/bin/goshmd ' /lib/systemd/system/goshmd.service || fail "ExecStart: $(grep ExecStart /lib/systemd/system/goshmd.service)"
goshmd --help | grep -q -- '--socket PATH' || fail "goshmd --help"
if man --version >/dev/null 2>&1; then # `man goshmd` finds the page, links too
  [ "$(man -w goshmd)" = /usr/share/man/man8/goshmd.8 ] || fail "man -w goshmd: $(man -w goshmd 2>&1)"
  MANWIDTH=80 man 3 goshm_malloc 2>/dev/null | grep -q 'goshm_malloc' || fail "man 3 goshm_malloc shows nothing"
fi

goshmd --socket "$tmp/d.sock" --size 256M --log-level warn &
daemon=$!
goshmctl --socket "$tmp/d.sock" wait || fail "the installed goshmd does not answer"
# A client built from the installed example, as a user of the package would.
cc -o "$tmp/hello" /usr/share/doc/goshm/examples/hello.c $(pkg-config --cflags --libs goshm) || fail "hello does not build"
out=$("$tmp/hello" "$tmp/d.sock") || fail "hello against the installed goshmd: exit $?"
echo "$out" | grep -q '^hello from shared memory' || fail "hello said: $out"
# The Python module, where Debian's python3 finds it (when the build had
# python3-dev: GOSHM_BUILD_PYTHON).
if grep -q '^/usr/lib/python3/dist-packages/goshm\..*\.so$' "$tmp/contents"; then
  (cd "$tmp" && /usr/bin/python3 -c "
import goshm, sys
with goshm.attach(sys.argv[1]) as h, h.buf_alloc(10) as b:
    memoryview(b)[:2] = b'ok'
    assert bytes(memoryview(b)[:2]) == b'ok'
    assert goshm.__file__.startswith('/usr/lib/python3/dist-packages/'), goshm.__file__
" "$tmp/d.sock") || fail "the installed Python module does not work"
fi
kill -TERM "$daemon"
wait "$daemon" || fail "goshmd did not exit cleanly"
daemon=

dpkg -r goshm >/dev/null || fail "dpkg -r failed"
left=0
while IFS= read -r f; do
  [ -d "$f" ] && continue # directories shared with other packages stay
  if [ -e "$f" ] || [ -L "$f" ]; then echo "test-deb: left behind: $f"; left=1; fi
done < "$tmp/contents"
[ $left -eq 0 ] || fail "dpkg -r left files behind"
# -r keeps the maintainer scripts (state config-files); purge forgets them.
dpkg --purge goshm >/dev/null || fail "dpkg --purge failed"
if dpkg-query -W -f='${Status}' goshm 2>/dev/null | grep -q 'ok'; then
  fail "dpkg still knows goshm: $(dpkg-query -W -f='${Status}' goshm)"
fi
installed=0
echo "test-deb: built, installed, ran goshmd and hello, removed cleanly"
