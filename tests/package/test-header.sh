#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: the public header compiles cleanly, with every macro and
# declaration used, as C99, C11 (and C89) and as C++11 (and C++98), with
# -Wall -Wextra -pedantic -Werror, under gcc and, when present, clang.
#   test-header.sh INCLUDE_DIR CC [CXX]
# Exit: 0 pass, 1 fail, 77 when no C++ compiler is found (after the C checks).
set -u
inc=${1:?usage: test-header.sh INCLUDE_DIR CC [CXX]}
cc=${2:?usage: test-header.sh INCLUDE_DIR CC [CXX]}
cxx=${3:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/goshm-header.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# Every declaration and macro of the header, used as a client would.
cat > "$tmp/use.c" <<'SRC'
#include <goshm/goshm.h>
#include <goshm/goshm.h> /* twice: the include guard */

typedef void *(*alloc2_fn)(goshm_t *, size_t, size_t);

int use_all(goshm_t *h, void *p);
int use_all(goshm_t *h, void *p)
{
    goshm_off_t off = goshm_off(h, p);
    alloc2_fn calloc_fn = goshm_calloc, aligned_fn = goshm_aligned_alloc;
    void *q = goshm_malloc(h, 16);
    void *r = calloc_fn(h, 2, 8);
    void *s = aligned_fn(h, 64, 64);
    const char *default_path = 0;
    q = goshm_realloc(h, q, 32);
    goshm_free(h, goshm_ptr(h, off == GOSHM_NULL ? GOSHM_NULL : off));
    goshm_free(h, q);
    goshm_free(h, r);
    goshm_free(h, s);
    if (goshm_usable_size(h, p) == 0) return goshm_detach(goshm_attach(default_path));
    return goshm_version() == GOSHM_VERSION &&
           GOSHM_VERSION == GOSHM_VERSION_MAJOR * 10000 + GOSHM_VERSION_MINOR * 100 + GOSHM_VERSION_PATCH;
}
SRC
cp "$tmp/use.c" "$tmp/use.cpp"
flags="-Wall -Wextra -pedantic -Werror -Wstrict-prototypes -Wmissing-prototypes -Wshadow"
fail=0
n=0
try() { # compiler, std, source, extra flags
  n=$((n + 1))
  if out=$("$1" -std="$2" $4 -I"$inc" -c "$3" -o "$tmp/o.o" 2>&1); then
    echo "ok: $1 -std=$2"
  else
    echo "FAIL: $1 -std=$2 -pedantic -Werror:"
    echo "$out"
    fail=1
  fi
}
ccs=$cc
command -v clang >/dev/null 2>&1 && [ "$(basename "$cc")" != clang ] && ccs="$ccs clang"
for c in $ccs; do
  for std in c89 c99 c11; do try "$c" "$std" "$tmp/use.c" "$flags"; done
done

if [ -z "$cxx" ]; then
  for c in c++ g++ clang++; do
    if command -v "$c" >/dev/null 2>&1; then cxx=$c; break; fi
  done
fi
cxxflags="-Wall -Wextra -pedantic -Werror -Wshadow -Wold-style-cast"
if [ -n "$cxx" ]; then
  cxxs=$cxx
  command -v clang++ >/dev/null 2>&1 && [ "$(basename "$cxx")" != clang++ ] && cxxs="$cxxs clang++"
  for c in $cxxs; do
    for std in c++98 c++11; do try "$c" "$std" "$tmp/use.cpp" "$cxxflags"; done
  done
fi
[ $fail -eq 0 ] || { echo "test-header: failed"; exit 1; }
if [ -z "$cxx" ]; then
  echo "test-header: $n C builds passed; no C++ compiler (install g++): C++ skipped"
  exit 77
fi
echo "test-header: $n builds passed"
