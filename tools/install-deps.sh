#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# install-deps.sh: install the Debian packages goshm builds, tests and
# benchmarks with, skipping those already present. Needs root or sudo.
#   tools/install-deps.sh          build + test dependencies
#   tools/install-deps.sh --bench  also the peers measured in bench/
set -euo pipefail
pkgs=(build-essential cmake pkg-config liburing-dev libevent-dev libprotobuf-c-dev protobuf-c-compiler systemd)
# tests/package: the header as C++ (g++), the man pages (man-db, groff-base),
# the .deb (dpkg-dev: dpkg-shlibdeps; file: cpack's ELF detection).
pkgs+=(g++ man-db groff-base dpkg-dev file)
# tests/observe: zlib (the gzipped heap profile), Go's pprof (`go tool pprof`
# reads the profile in test-profile), python3 (top on a pseudo-terminal).
pkgs+=(zlib1g-dev golang-go python3)
# python/: the Python module (CPython's headers); tests/python: pytest, and
# numpy (buffers read and written in place through numpy.frombuffer).
pkgs+=(python3-dev python3-pytest python3-numpy)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libboost-dev
        libtbb-dev iceoryx libiceoryx-binding-c-dev gnuplot-nox linux-perf)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
