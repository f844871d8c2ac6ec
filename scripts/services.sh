#!/usr/bin/env bash
# Starts or stops the local services the integration tests need, on 127.0.0.1, with
# data under /tmp/dpone-services (each server's own PID recorded and stopped by PID).
# The SQLite and files connectors need no server; each server-backed connector adds one
# file scripts/services/<name>.sh defining start_<name>, stop_<name>, status_<name> and
# clean_<name> and writing $ROOT/<name>.env (see docs/testing.md "Services").
#   scripts/services.sh start | stop | status | clean [service ...]   (default: all)
#     start   start every service not yet running (idempotent), then write $ROOT/env.sh
#     stop    stop every service by its recorded PID (fast shutdown, SIGKILL after ~15 s)
#     status  say what runs; exit 0 when all run, 3 when one is stopped
#     clean   stop, then delete the services' data (the next start begins empty)
# Tests find the services through $ROOT/env.sh: `source /tmp/dpone-services/env.sh`.
#
# Environment:
#   DPONE_SERVICES_DIR  root of service data, PIDs, logs and env.sh (default /tmp/dpone-services;
#                       must be reachable by the `postgres` user, so keep it under /tmp)
#   DPONE_PG_PORT       PostgreSQL TCP port on 127.0.0.1 (default 54329)
#   DPONE_PG_BIN        PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   DPONE_PG_DURABLE=1  keep fsync/synchronous_commit/full_page_writes on (benchmarks);
#                       default off: the cluster is throwaway and tests run faster
# shellcheck disable=SC2317  # start_/stop_/status_/clean_<service> are called indirectly
set -euo pipefail
ROOT=$(realpath -m "${DPONE_SERVICES_DIR:-/tmp/dpone-services}")

say() { echo "services: $*"; }
die() { echo "services: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# Every service file, in name order; each defines its four functions.
SERVICES=()
for f in "$(dirname "$0")"/services/*.sh; do
  # shellcheck source=/dev/null
  source "$f"
  SERVICES+=("$(basename "$f" .sh)")
done

# --- driver ------------------------------------------------------------------------------

# env.sh = the env fragments of the services that run now (written atomically).
write_env_sh() {
  local tmp=$ROOT/env.sh.tmp s
  {
    echo "# Written by scripts/services.sh; source it to reach the running test services."
    for s in "${ALL_SERVICES[@]}"; do
      [ -f "$ROOT/$s.env" ] && cat "$ROOT/$s.env"
    done
    true
  } > "$tmp"
  mv -f "$tmp" "$ROOT/env.sh"
}

cmd=${1:-status}
case "$cmd" in
  start|stop|status|clean) ;;
  *) echo "usage: $0 start|stop|status|clean [service ...]" >&2; exit 2 ;;
esac
# Optional service names after the command: only those (e.g. a benchmark that needs
# PostgreSQL alone); env.sh still lists every service that runs.
ALL_SERVICES=("${SERVICES[@]}")
if [ $# -gt 1 ]; then
  shift
  for s in "$@"; do
    [ -f "$(dirname "$0")/services/$s.sh" ] ||
      die "unknown service '$s' (known: ${ALL_SERVICES[*]})"
  done
  SERVICES=("$@")
fi
mkdir -p "$ROOT"
is_root && chmod 755 "$ROOT"
if [ ${#SERVICES[@]} -eq 0 ]; then
  write_env_sh
  say "none needed by the connectors of this build"
  exit 0
fi
if [ "$cmd" = status ]; then
  rc=0
  for s in "${SERVICES[@]}"; do "status_${s//-/_}" || rc=3; done
  exit "$rc"
fi
# One start/stop at a time per services directory (test.sh and a developer may race).
exec 9> "$ROOT/.lock"
flock -w 120 9 || die "another scripts/services.sh holds $ROOT/.lock"
for s in "${SERVICES[@]}"; do "${cmd}_${s//-/_}"; done
write_env_sh
[ "$cmd" = start ] && say "environment in $ROOT/env.sh"
exit 0
