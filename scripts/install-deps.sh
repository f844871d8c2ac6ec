#!/usr/bin/env bash
# Installs everything dpone needs to build and test, from Debian 12 packages.
#   scripts/install-deps.sh          # everything (README command 2)
#   scripts/install-deps.sh --core   # only what the core, the files and SQLite connectors and
#                                    # the quickstart need (README command 1): no servers, no
#                                    # client libraries of other connectors, no test tools
# One apt-get transaction, so client libraries and servers stay at matching versions
# (installing libpq-dev on its own later could upgrade libpq5 and the server behind the
# tests' back). Safe to re-run; skips apt when every package is already installed.
# Installing a server package starts nothing here (no systemd): scripts/services.sh runs
# the servers the tests need, as throwaway clusters under /tmp.
set -euo pipefail

CORE_PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  ccache   # scripts/build.sh compiles through it: rebuilds and fresh clones reuse the objects
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libsqlite3-dev sqlite3 libssl-dev
  libjemalloc-dev   # the dpone executable's allocator (cheap cross-thread frees; src/cli/CMakeLists.txt)
)
PACKAGES=(
  "${CORE_PACKAGES[@]}"
  libgtest-dev libgmock-dev time
  postgresql-15 postgresql-client-15 libpq-dev
  clickhouse-server clickhouse-client libcurl4-openssl-dev   # clickhouse connector + its test server
  librdkafka-dev kcat                                         # kafka connector; kcat is the independent client in tests
  libsimdjson-dev libcpp-httplib-dev                          # rest connector (parser) and its in-process test server
  chromium   # headless browser: the run-report HTML screenshot test
)

if [ "${1:-}" = --core ]; then PACKAGES=("${CORE_PACKAGES[@]}"); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 3
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The whole list, not only the missing ones: a lone `libpq-dev` would pull a newer libpq5
# while the server stays old; naming them all lets apt move them together.
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
echo "install-deps: done"
