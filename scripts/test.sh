#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, starts the local services,
# runs every test (unit, connector, declarative pipeline cases, failpoint crash tests)
# and stops the services again. This is README command 2 and what .ci/run calls.
# Server tests find the services through the variables of $DPONE_SERVICES_DIR/env.sh
# (e.g. DPONE_TEST_PG_DSN); DPONE_REQUIRE_SERVICES=1 makes a server test that finds no
# service fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# The trap comes first, so a start that fails half-way still stops what it started.
trap 'scripts/services.sh stop' EXIT
# ClickHouse 26 (libchdb behind the project's adapter, docs/testing.md) beside 18.16;
# DPONE_CH26=0 leaves it out.
export DPONE_CH26=${DPONE_CH26:-1}
scripts/services.sh start
# shellcheck source=/dev/null
source "${DPONE_SERVICES_DIR:-/tmp/dpone-services}/env.sh"
export DPONE_REQUIRE_SERVICES=1
BUILD_DIR=${DPONE_BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure --schedule-random -j"${DPONE_JOBS:-$(nproc)}" --timeout 600
if [ "$DPONE_CH26" = 1 ]; then
  # The ClickHouse suite once more, against ClickHouse 26: the connector tests and every
  # end-to-end test of a ClickHouse sink or source.
  echo "test: the ClickHouse suite against ClickHouse 26 ($DPONE_TEST_CH26_URL)"
  DPONE_TEST_CH_URL=$DPONE_TEST_CH26_URL "$BUILD_DIR/bin/dpone_clickhouse_tests" --gtest_brief=1
  DPONE_TEST_CH_URL=$DPONE_TEST_CH26_URL "$BUILD_DIR/bin/dpone_e2e_tests" --gtest_brief=1 \
    --gtest_filter='ChAll*:ClickHouse.*:PgClickHouse*:Sinks/Lease.*/clickhouse'
fi
