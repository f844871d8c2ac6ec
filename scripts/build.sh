#!/usr/bin/env bash
# Configures and builds dpone into ./build (or $DPONE_BUILD_DIR). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${DPONE_BUILD_DIR:-build}
JOBS=${DPONE_JOBS:-$(nproc)}
# ccache (scripts/install-deps.sh installs it) when present: paths are hashed relative to
# this clone, so every clone on the machine shares one cache.
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
  # With -g ccache hashes the build directory too, unless told not to: clones would miss.
  export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
# DPONE_BUILD_TESTS=OFF (the quickstart) builds dpone and its connector modules only; the
# value is passed every time, so a later build with tests is not stuck on a cached OFF.
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${DPONE_BUILD_TYPE:-RelWithDebInfo} \
  -DDPONE_BUILD_TESTS="${DPONE_BUILD_TESTS:-ON}" "${launcher[@]}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"
echo "build: $BUILD_DIR/bin/dpone"
