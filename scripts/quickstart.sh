#!/usr/bin/env bash
# README command 1: installs dependencies, builds, and runs the quickstart on the
# embedded default (files -> SQLite, no server). Starts from a clean quickstart
# folder each time, so it can be run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
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
