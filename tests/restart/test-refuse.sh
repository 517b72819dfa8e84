#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: goshmd --state-dir refuses a directory that does not hold
# exactly a goshm heap of its ABI, says why, exits 1 and leaves every byte
# as it was: random files, a heap whose creation was cut short (goshm-data
# alone), a heap of another ABI, an inconsistent heap, a directory others
# may write. --fresh then starts a new heap there deliberately.
# Usage: test-refuse.sh GOSHMD GOSHMCTL
set -u
goshmd=$1
goshmctl=$2
base=/dev/shm
[ -d "$base" ] || base=/tmp
tmp=$(mktemp -d "$base/gsr-refuse.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
sums() { (cd "$1" && stat -c '%n %a %s %Y %i' . * && cat goshm-data goshm-meta 2>/dev/null | sha256sum) }

# refused DIR WHAT: goshmd must exit 1, name WHAT, and change nothing.
refused() {
  before=$(sums "$1")
  timeout 20 "$goshmd" --socket "$tmp/s.sock" --state-dir "$1" --size 64M --log-level warn >"$tmp/out" 2>&1
  rc=$?
  [ $rc -eq 1 ] || bad "$1: exit $rc, want 1"
  grep -q "$2" "$tmp/out" || { bad "$1: no '$2' in the message:"; cat "$tmp/out"; }
  grep -q "left untouched" "$tmp/out" || bad "$1: the message does not say the directory is left untouched"
  after=$(sums "$1")
  [ "$after" = "$before" ] || { bad "$1: changed"; echo "$before" >"$tmp/b"; echo "$after" >"$tmp/a"; diff "$tmp/b" "$tmp/a"; }
  [ ! -e "$tmp/s.sock" ] || bad "$1: a socket was left behind"
}

# A heap made by a daemon that ran and stopped.
make_heap() {
  "$goshmd" --socket "$tmp/m.sock" --state-dir "$1" --size 64M --log-level warn &
  pid=$!
  "$goshmctl" --socket "$tmp/m.sock" wait >/dev/null || bad "the daemon making $1 did not start"
  kill -TERM $pid; wait $pid || bad "the daemon making $1 did not stop cleanly"
  [ -f "$1/goshm-data" ] && [ -f "$1/goshm-meta" ] || bad "$1: no heap files"
  [ "$(stat -c %a "$1")" = 700 ] || bad "$1: mode $(stat -c %a "$1"), want 700"
  [ "$(stat -c %a "$1/goshm-meta")" = 600 ] || bad "$1/goshm-meta: mode $(stat -c %a "$1/goshm-meta"), want 600"
}
# poke FILE OFFSET BYTES(octal escapes): overwrite in place.
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

mkdir -m 700 "$tmp/garbage"
head -c 200000 /dev/urandom >"$tmp/garbage/goshm-data"
head -c 90000 /dev/urandom >"$tmp/garbage/goshm-meta"
refused "$tmp/garbage" "not a goshm heap"

mkdir -m 700 "$tmp/half"
head -c 5000 /dev/urandom >"$tmp/half/goshm-data"
refused "$tmp/half" "only goshm-data"

make_heap "$tmp/abi"
poke "$tmp/abi/goshm-meta" 8 '\143\000\000\000' # abi_version = 99
refused "$tmp/abi" "ABI 99"

make_heap "$tmp/torn"
poke "$tmp/torn/goshm-meta" 64 '\005\000\000\000' # 5 heap pages grown: not whole arenas
refused "$tmp/torn" "inconsistent heap"

make_heap "$tmp/open"
chmod 777 "$tmp/open"
refused "$tmp/open" "writable by nobody else"
chmod 700 "$tmp/open"

# --fresh starts over, with a new heap.
"$goshmd" --socket "$tmp/f.sock" --state-dir "$tmp/garbage" --fresh --size 64M --log-level warn &
pid=$!
"$goshmctl" --socket "$tmp/f.sock" wait >/dev/null || bad "--fresh did not start"
"$goshmctl" --socket "$tmp/f.sock" stats --json | grep -q '"adopted": 0' || bad "--fresh: not a new heap"
kill -TERM $pid; wait $pid || bad "--fresh daemon did not stop cleanly"
# ... which the next daemon adopts.
"$goshmd" --socket "$tmp/f.sock" --state-dir "$tmp/garbage" --size 64M --log-level warn &
pid=$!
"$goshmctl" --socket "$tmp/f.sock" wait >/dev/null || bad "the heap --fresh made is not adopted"
"$goshmctl" --socket "$tmp/f.sock" stats --json | grep -q '"adopted": 1' || bad "not adopted"
"$goshmctl" --socket "$tmp/f.sock" stats | grep -q "adopted from a previous goshmd" || bad "stats does not say adopted"
kill -TERM $pid; wait $pid || bad "the adopting daemon did not stop cleanly"

[ $fail -eq 0 ] && echo "test-refuse: passed"
exit $fail
