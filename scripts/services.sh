#!/usr/bin/env bash
# Starts or stops the local services the integration tests need, on 127.0.0.1, with
# data under /tmp/dpone-services (each server's own PID recorded and stopped by PID).
# The SQLite and files connectors need no server; server-backed connectors add their
# service here as they arrive (see docs/testing.md).
#   scripts/services.sh start | stop | status
set -euo pipefail
ROOT=${DPONE_SERVICES_DIR:-/tmp/dpone-services}
SERVICES=()   # e.g. postgres clickhouse kafka-mock, each with start_<name>/stop_<name>

cmd=${1:-status}
mkdir -p "$ROOT"
case "$cmd" in
  start|stop|status)
    if [ ${#SERVICES[@]} -eq 0 ]; then
      echo "services: none needed by the connectors of this build"
      exit 0
    fi
    for s in "${SERVICES[@]}"; do "${cmd}_${s//-/_}"; done
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
