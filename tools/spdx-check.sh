#!/bin/sh
# SPDX-License-Identifier: MIT
# spdx-check.sh: list the source, build and script files of the repository
# (tracked, or new and not ignored) whose first lines carry no
# "SPDX-License-Identifier: MIT"; exit 1 if there is any. tools/spdx-add.sh
# adds the missing lines.
#   tools/spdx-check.sh [--style] [REPO_DIR]
# --style prints "STYLE PATH" (STYLE: c, slash, hash or roff: the comment
# form the file takes) instead of the bare path; spdx-add.sh reads that.
set -eu
style_out=0
if [ "${1:-}" = "--style" ]; then
  style_out=1
  shift
fi
cd "${1:-$(dirname "$0")/..}"

# The comment form a file takes, or "none" for files that need no line
# (documentation, data, the license itself).
style_of() {
  case "$1" in
    *.c | *.h | *.cc | *.cpp | *.hpp | *.map) echo c ;;
    *.proto) echo slash ;;
    *.sh | *.py | *.cmake | *.cmake.in | */CMakeLists.txt | CMakeLists.txt | */Makefile | Makefile | *.mk | \
      *.pc.in | *.service | *.service.in | *.socket | .ci/*) echo hash ;;
    *.[1-8]) echo roff ;;
    *)
      # An extensionless script is recognised by its shebang.
      if head -c 2 "$1" 2>/dev/null | grep -q '^#!'; then echo hash; else echo none; fi ;;
  esac
}

missing=0
git ls-files --cached --others --exclude-standard | sort -u > "${TMPDIR:-/tmp}/spdx-files.$$"
trap 'rm -f "${TMPDIR:-/tmp}/spdx-files.$$"' EXIT
while IFS= read -r f; do
  [ -f "$f" ] || continue # deleted in the work tree
  s=$(style_of "$f")
  [ "$s" = none ] && continue
  head -n 3 "$f" | grep -q 'SPDX-License-Identifier: MIT' && continue
  missing=$((missing + 1))
  if [ $style_out -eq 1 ]; then echo "$s $f"; else echo "$f"; fi
done < "${TMPDIR:-/tmp}/spdx-files.$$"
if [ $missing -ne 0 ]; then
  [ $style_out -eq 1 ] || echo "spdx-check: $missing file(s) without an SPDX-License-Identifier line (fix: tools/spdx-add.sh)" >&2
  exit 1
fi
[ $style_out -eq 1 ] || echo "spdx-check: every source file has its SPDX line"
exit 0
