#!/bin/sh
# SPDX-License-Identifier: MIT
# spdx-add.sh: add "SPDX-License-Identifier: MIT" to every file
# tools/spdx-check.sh reports, in the file's own comment form: C and C++
# "/* ... */" as the first line, proto "// ...", shell, CMake, Python and
# the like "# ..." after the shebang if any, man pages '.\" ...'.
# Idempotent: files that have the line are left alone.
#   tools/spdx-add.sh [REPO_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "${1:-$here/..}" && pwd)
cd "$repo"
list=$(sh "$here/spdx-check.sh" --style "$repo" || true)
[ -n "$list" ] || { echo "spdx-add: nothing to do"; exit 0; }
echo "$list" | while read -r style f; do
  case "$style" in
    c) line='/* SPDX-License-Identifier: MIT */' ;;
    slash) line='// SPDX-License-Identifier: MIT' ;;
    hash) line='# SPDX-License-Identifier: MIT' ;;
    roff) line='.\" SPDX-License-Identifier: MIT' ;;
    *) echo "spdx-add: $f: unknown style $style" >&2; exit 1 ;;
  esac
  tmp="$f.spdx-tmp"
  if [ "$style" = hash ] && head -n 1 "$f" | grep -q '^#!'; then
    { head -n 1 "$f"; printf '%s\n' "$line"; tail -n +2 "$f"; } > "$tmp"
  else
    { printf '%s\n' "$line"; cat "$f"; } > "$tmp"
  fi
  # Keep the file's mode (scripts stay executable).
  chmod "$(stat -c %a "$f")" "$tmp"
  mv "$tmp" "$f"
  echo "spdx-add: $f"
done
sh "$here/spdx-check.sh" "$repo" >/dev/null
echo "spdx-add: done"
