#!/usr/bin/env bash
# Configures and builds dpone into ./build (or $DPONE_BUILD_DIR). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${DPONE_BUILD_DIR:-build}
JOBS=${DPONE_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${DPONE_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"
echo "build: $BUILD_DIR/bin/dpone"
