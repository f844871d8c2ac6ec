#!/usr/bin/env bash
# Does dpone's memory grow with the table? One PostgreSQL -> PostgreSQL full_refresh of a
# SMALL and a LARGE table (default 5M and 20M rows of the pg_to_pg shape), peak RSS of
# each, and their ratio (the goal: LARGE within 10% of SMALL). The rows go through dpone
# (COPY path, `internal_query: false`), though source and sink are one database.
#   bench/pg_to_pg/rss_scale.sh [SMALL] [LARGE]
# Uses the PostgreSQL test service (scripts/services.sh start postgres) or BENCH_PG_DSN;
# DPONE_BIN overrides the binary. Prints `bench pg_to_pg_rss rows=<n> ... peak_rss_mb=<x>`
# per size and a final `rss_ratio=` line.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$ROOT/bench/lib.sh"
SMALL=${1:-5000000}
LARGE=${2:-20000000}
DPONE=${DPONE_BIN:-$ROOT/build/bin/dpone}
WORK=${BENCH_DIR:-/tmp/dpone-bench-rss}
DB=dpone_bench_rss
rm -rf "$WORK"; mkdir -p "$WORK"
if [ -z "${BENCH_PG_DSN:-}" ]; then
  "$ROOT/scripts/services.sh" status postgres >/dev/null || "$ROOT/scripts/services.sh" start postgres
  source "${DPONE_SERVICES_DIR:-/tmp/dpone-services}/env.sh"
  BENCH_PG_DSN=$DPONE_TEST_PG_DSN
fi
psql "$BENCH_PG_DSN" -XAtq -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
trap 'psql "$BENCH_PG_DSN" -XAtq -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
DB_DSN="$BENCH_PG_DSN dbname=$DB"
sql() { PGOPTIONS="-c client_min_messages=warning" psql "$DB_DSN" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
export DPONE_CONN_PG_TYPE=postgres
for kv in $DB_DSN; do export "DPONE_CONN_PG_$(echo "${kv%%=*}" | tr a-z A-Z)=${kv#*=}"; done

sql "CREATE TABLE src (id bigint PRIMARY KEY, name text, amount numeric(12,2),
                       created_at timestamptz NOT NULL, attrs jsonb)"
fill() {  # rows $1+1 .. $2
  sql "INSERT INTO src SELECT g, 'Customer ' || g || ', Ltd', round((g % 100000) * 1.01, 2),
         timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second',
         jsonb_build_object('id', g, 'tag', 'tag' || (g % 100))
       FROM generate_series($1 + 1, $2) g" >/dev/null
  sql "VACUUM (FREEZE, ANALYZE) src"
}
mkdir -p "$WORK/m"
cat > "$WORK/m/manifest.yaml" <<YAML
kind: dpone.batch.v1
streams:
  - name: rss
    source: {connector: postgres, connection: pg, table: src, internal_query: false}
    sink: {connector: postgres, connection: pg, table: t_dpone, strategy: {mode: full_refresh, allow_shrink: true}}
YAML
prev=0
for n in "$SMALL" "$LARGE"; do
  echo "filling src to $n rows..."
  fill "$prev" "$n"; prev=$n
  sql "DROP TABLE IF EXISTS t_dpone"; sql "CREATE TABLE t_dpone (LIKE src INCLUDING ALL)"
  measure "$WORK/rss_$n.txt" "$DPONE" run "$WORK/m/manifest.yaml" -q
  [ "$(sql "SELECT count(*) FROM t_dpone")" = "$n" ] || { echo "CHECK FAILED: t_dpone has not $n rows" >&2; exit 1; }
  report pg_to_pg_rss "$n" "$WORK/rss_$n.txt"
done
small=$(awk '{print $3}' "$WORK/rss_$SMALL.txt"); large=$(awk '{print $3}' "$WORK/rss_$LARGE.txt")
awk -v s="$small" -v l="$large" -v a="$SMALL" -v b="$LARGE" \
  'BEGIN {printf "rss_ratio=%.3f (peak RSS at %d rows over peak RSS at %d rows; goal <= 1.10)\n", l / s, b, a}'
