#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, starts the local services,
# runs every test (unit, connector, declarative pipeline cases, failpoint crash tests)
# and stops the services again. This is README command 2 and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/services.sh start
trap 'scripts/services.sh stop' EXIT
BUILD_DIR=${DPONE_BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"${DPONE_JOBS:-$(nproc)}" --timeout 600
