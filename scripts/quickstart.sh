#!/usr/bin/env bash
# README command 1: installs the core packages only, builds dpone without the tests, and
# runs the quickstart on the embedded default (files -> SQLite, no server). Starts from a clean quickstart
# folder each time, so it can be run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
echo "== 1/3 installing the core packages (compiler, CMake, YAML, JSON, SQLite; no servers)"
scripts/install-deps.sh --core
echo "== 2/3 building dpone and its connector modules (no tests; \`scripts/test.sh\` builds those)"
DPONE_BUILD_TESTS=OFF scripts/build.sh
echo "== 3/3 the quickstart (after $((SECONDS - t0)) s)"
QS=examples/quickstart
rm -rf "$QS/landing" "$QS/out" "$QS/.dpone"
mkdir -p "$QS/landing"
cp "$QS"/data/day1/* "$QS/landing/"
echo
echo "== dpone validate"
build/bin/dpone validate "$QS/manifest.yaml"
echo
echo "== dpone run (day 1 files)"
build/bin/dpone run "$QS/manifest.yaml"
echo
echo "Next: add the day-2 files and run again (updates merge in, a new column is added):"
echo "  cp $QS/data/day2/* $QS/landing/ && build/bin/dpone run $QS/manifest.yaml"
echo "  build/bin/dpone state history customers -m $QS/manifest.yaml"
echo "  build/bin/dpone run-report --last -m $QS/manifest.yaml --format html -o /tmp/report.html"
