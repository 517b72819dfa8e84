#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: the man pages render without a warning (groff -ww, and
# man -l --warnings), and say what the code does: every option of
# `goshmd --help`, every command and option of `goshmctl --help`, every
# function of goshm.h (with its link page), every errno the header names
# and every environment variable the code reads.
#   test-man.sh SOURCE_DIR BUILD_DIR GOSHMD GOSHMCTL
# Exit: 0 pass, 1 fail, 77 skipped (no groff).
set -u
src=${1:?usage: test-man.sh SOURCE_DIR BUILD_DIR GOSHMD GOSHMCTL}
build=${2:?}
goshmd=${3:?}
goshmctl=${4:?}
if ! command -v groff >/dev/null 2>&1; then
  echo "test-man: groff not found (tools/install-deps.sh installs groff-base): skipped"
  exit 77
fi
d8=$src/daemon/goshmd.8
c1=$src/tools/goshmctl.1
l3=$src/client/goshm.3
header=$src/client/include/goshm/goshm.h
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# 1. Rendering, with every warning.
for page in "$d8" "$c1" "$l3"; do
  [ -f "$page" ] || { bad "$page missing"; continue; }
  out=$(groff -ww -z -t -man "$page" 2>&1)
  [ -z "$out" ] || bad "groff -ww $page: $out"
  if man --version >/dev/null 2>&1; then # not the stub of minimized images
    out=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$page" 2>&1 >/dev/null)
    [ -z "$out" ] || bad "man -l --warnings $page: $out"
    MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q '^NAME' || bad "man -l $page renders no NAME section"
  fi
done

# A word is documented when the page's source has it (roff escapes '-').
has() { # page word
  sed 's/\\-/-/g; s/\\f[BIRP]//g' "$1" | grep -q -e "$2"
}

# 2. goshmd: every option of --help.
opts=$("$goshmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u)
[ -n "$opts" ] || bad "goshmd --help lists no options"
for o in $opts; do has "$d8" "$o" || bad "goshmd.8 does not document $o"; done

# 3. goshmctl: every option and command of --help.
opts=$("$goshmctl" --help | grep -o -- '--[a-z][a-z-]*' | sort -u)
cmds=$("$goshmctl" --help | sed -n '/^Commands:/,/^$/p' | grep -E '^  [a-z]+ ' | awk '{print $1}' | sort -u)
[ -n "$opts" ] && [ -n "$cmds" ] || bad "goshmctl --help lists no options or commands"
for o in $opts $cmds; do has "$c1" "$o" || bad "goshmctl.1 does not document $o"; done

# 4. goshm(3): every public function, in NAME and with a link page; every
# errno the header names, in ERRORS.
fns=$(grep '^GOSHM_API ' "$header" | grep -o 'goshm_[a-z_]*(' | tr -d '(' | sort -u)
[ "$(echo "$fns" | wc -w)" -ge 10 ] || bad "found only $(echo "$fns" | wc -w) functions in $header"
name=$(sed -n '/^\.SH NAME/,/^\.SH/p' "$l3")
errors=$(sed -n '/^\.SH ERRORS/,/^\.SH/p' "$l3")
for f in $fns; do
  echo "$name" | grep -q "\\b$f\\b" || bad "goshm.3 NAME does not list $f"
  link=$build/man/man3/$f.3
  if [ "$(cat "$link" 2>/dev/null)" != ".so man3/goshm.3" ]; then bad "no link page $link"; fi
done
for e in $(grep -o '\bE[A-Z]\{3,\}\b' "$header" | sort -u); do
  echo "$errors" | grep -q "\\b$e\\b" || bad "goshm.3 ERRORS does not document $e (named in goshm.h)"
done

# 5. Environment variables the code reads, in the page of its program.
envs() { grep -rhoE 'getenv\("[A-Z_]+"\)' "$@" 2>/dev/null | sed 's/getenv("\(.*\)")/\1/' | sort -u; }
lib_env=$(envs "$src/client" "$src/shm")
daemon_env="$(envs "$src/daemon") XDG_RUNTIME_DIR"
[ -n "$lib_env" ] && [ -n "$(envs "$src/daemon")" ] || bad "found no getenv() calls: did the sources move?"
for v in $lib_env; do has "$l3" "$v" || bad "goshm.3 does not document \$$v"; done
for v in $daemon_env; do has "$d8" "$v" || bad "goshmd.8 does not document \$$v"; done
for v in GOSHM_SOCKET XDG_RUNTIME_DIR; do has "$c1" "$v" || bad "goshmctl.1 does not document \$$v"; done

[ $fail -eq 0 ] || { echo "test-man: failed"; exit 1; }
echo "test-man: 3 pages render cleanly; $(echo $fns | wc -w) functions, options, commands, errno values and environment variables all documented"
