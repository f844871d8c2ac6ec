#!/usr/bin/env bash
# Random-time kills over every sink (issue 24): runs the RandomKill e2e cases (the suite's
# SQLite and PostgreSQL ones and the DISABLED_ ClickHouse, files and Kafka ones) with
# KILLS_PER_CASE SIGKILLs each at seeded random moments, then prints one line per case
#   random-kill <case> kills=N lost=N duplicated=N seed=S
# and a total. Exit 0 only when every case ran and nothing was lost or duplicated.
#
#   scripts/random-kill.sh [KILLS_PER_CASE] [SEED]        # default 40, a random seed
#   RANDOM_KILL_FILTER='*Kafka*' scripts/random-kill.sh 10   # a gtest filter on the cases
#
# Needs the build (dpone_cli, the connector modules, dpone_e2e_tests) and the services
# (scripts/services.sh start; their env.sh is sourced from DPONE_SERVICES_DIR when the
# variables are not set). Replay a failure with the seed it printed: same seed, same
# draws; DPONE_RANDOM_KILL_CLEAN_MS=<clean_ms> fixes the measured clean-run time too.
set -euo pipefail
cd "$(dirname "$0")/.."

kills=${1:-40}
seed=${2:-$((RANDOM * 32768 + RANDOM))}
build=${DPONE_BUILD_DIR:-build}
bin="$build/bin/dpone_e2e_tests"
[ -x "$bin" ] || { echo "random-kill: $bin missing: cmake --build $build --target dpone_e2e_tests" >&2; exit 2; }
if [ -z "${DPONE_TEST_PG_DSN:-}" ]; then
  env_sh="${DPONE_SERVICES_DIR:-/tmp/dpone-services}/env.sh"
  [ -f "$env_sh" ] || { echo "random-kill: no services: scripts/services.sh start" >&2; exit 2; }
  # shellcheck disable=SC1090
  . "$env_sh"
fi

log=$(mktemp /tmp/random-kill.XXXXXX.log)
echo "random-kill: kills per case $kills, seed $seed, log $log"
set +e
DPONE_RANDOM_KILL_KILLS=$kills DPONE_RANDOM_KILL_SEED=$seed DPONE_REQUIRE_SERVICES=1 \
  "$bin" --gtest_also_run_disabled_tests --gtest_filter="RandomKill.${RANDOM_KILL_FILTER:-*}" >"$log" 2>&1
status=$?
set -e

# Failures (seed, kill, delay, phase, sample rows) first, then the per-case lines.
grep -E 'Failure|kill [0-9]+ at|the re-run|the state claims|\[  FAILED  \]' "$log" | grep -v '^\[  FAILED  \] [0-9]' | head -40 || true
grep -E '^random-kill(-note|-detail)? ' "$log" | grep -v '^random-kill-start' || true
awk -v seed="$seed" '
  /^random-kill [^ ]+ kills=/ {
    for (i = 3; i <= NF; ++i) { split($i, kv, "="); t[kv[1]] += kv[2] }
    cases++
  }
  END { printf "random-kill total cases=%d kills=%d lost=%d duplicated=%d seed=%s\n", cases, t["kills"], t["lost"], t["duplicated"], seed }
' "$log"
exit $status
