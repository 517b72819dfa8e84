#!/bin/sh
# SPDX-License-Identifier: MIT
# Check that the committed size-class header matches the generator's output.
# Usage: test-sizeclasses-regen.sh MKSIZECLASSES_BINARY COMMITTED_HEADER
# Exit 0 when identical, 1 (with a diff) on mismatch, 2 on usage/run errors.
set -u

if [ "$#" -ne 2 ]; then
	echo "usage: $0 MKSIZECLASSES_BINARY COMMITTED_HEADER" >&2
	exit 2
fi
gen=$1
committed=$2

if [ ! -f "$committed" ]; then
	echo "$0: committed header '$committed' not found" >&2
	exit 1
fi

tmp=$(mktemp "${TMPDIR:-/tmp}/sizeclasses.XXXXXX") || exit 2
trap 'rm -f "$tmp"' EXIT HUP INT TERM

if ! "$gen" "$tmp"; then
	echo "$0: generator '$gen' failed" >&2
	exit 1
fi

if ! cmp -s "$committed" "$tmp"; then
	echo "$0: $committed is stale; regenerate it with:" >&2
	echo "  cc -O2 -o /tmp/mksizeclasses tools/mksizeclasses.c && /tmp/mksizeclasses shm/sizeclasses.h" >&2
	diff -u "$committed" "$tmp" >&2
	exit 1
fi
echo "sizeclasses regen: $committed is up to date"
exit 0
