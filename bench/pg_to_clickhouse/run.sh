#!/usr/bin/env bash
# Benchmark: PostgreSQL -> ClickHouse on one generated table (default 5,000,000 rows:
# id bigint PK, text, numeric(12,2), timestamptz(0), jsonb), all parts in the same run:
#   (a) native: psql `COPY (SELECT ...) TO STDOUT` | curl -T - (streamed) into
#       `INSERT INTO t FORMAT TabSeparated` (date_time_input_format=best_effort), into an
#       empty MergeTree table of the same definition dpone creates
#   (b) dpone full_refresh, one stream postgres -> clickhouse (the sink asks PostgreSQL for
#       COPY binary, cheaper for the backend to produce, and renders TabSeparated itself)
# Median of RUNS (default 3) each; prints wall, CPU, peak RSS, rows/s and the ratio to (a).
# CPU and peak RSS are the client side only (psql + curl, dpone); server work shows in wall.
#   bench/pg_to_clickhouse/run.sh [ROWS] [RUNS]
# Environment:
#   DPONE_BIN            the dpone binary (default build/bin/dpone)
#   DPONE_SERVICES_DIR   services of scripts/services.sh to use (default /tmp/dpone-services);
#                        started (and stopped again) if not running. For durable PostgreSQL
#                        numbers start them with DPONE_PG_DURABLE=1.
#   BENCH_PG_DB          PostgreSQL database created for the benchmark, DROPPED first (dpone_bench_ch)
#   BENCH_CH_DB          ClickHouse database created for the benchmark, DROPPED first (dpone_bench)
#   BENCH_DIR            work directory (default /tmp/dpone-bench-ch)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ROWS=${1:-5000000}
RUNS=${2:-3}
DPONE=${DPONE_BIN:-$ROOT/build/bin/dpone}
WORK=${BENCH_DIR:-/tmp/dpone-bench-ch}
PGDB=${BENCH_PG_DB:-dpone_bench_ch}
CHDB=${BENCH_CH_DB:-dpone_bench}
SERVICES_DIR=${DPONE_SERVICES_DIR:-/tmp/dpone-services}
export DPONE_SERVICES_DIR=$SERVICES_DIR
[[ "$PGDB" =~ ^[a-z_][a-z0-9_]*$ && "$CHDB" =~ ^[a-z_][a-z0-9_]*$ ]] ||
  { echo "BENCH_PG_DB / BENCH_CH_DB must be plain lowercase names" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql not found: scripts/install-deps.sh" >&2; exit 3; }
command -v curl >/dev/null || { echo "curl not found" >&2; exit 3; }
[ -x "$DPONE" ] || { echo "no dpone binary at $DPONE (scripts/build.sh, or set DPONE_BIN)" >&2; exit 3; }
rm -rf "$WORK"; mkdir -p "$WORK"

started_service=0
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "${CH_URL:-}" ]; then curl -sS "$CH_URL/" --data-binary "DROP DATABASE IF EXISTS $CHDB" >/dev/null 2>&1 || true; fi
  if [ -n "${ADMIN_DSN:-}" ]; then
    psql "$ADMIN_DSN" -XAtq -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ "$started_service" = 1 ]; then "$ROOT/scripts/services.sh" stop >/dev/null; fi
}
trap cleanup EXIT
# Both servers must answer; other services of scripts/services.sh do not matter here.
services_up() {
  [ -f "$SERVICES_DIR/env.sh" ] || return 1
  # shellcheck source=/dev/null
  source "$SERVICES_DIR/env.sh"
  [ -n "${DPONE_TEST_PG_DSN:-}" ] && [ -n "${DPONE_TEST_CH_URL:-}" ] &&
    psql "$DPONE_TEST_PG_DSN" -XAtqc "SELECT 1" >/dev/null 2>&1 &&
    curl -sf "$DPONE_TEST_CH_URL/ping" >/dev/null 2>&1
}
if ! services_up; then
  "$ROOT/scripts/services.sh" start
  started_service=1
  services_up || { echo "PostgreSQL or ClickHouse of $SERVICES_DIR does not answer" >&2; exit 3; }
fi
ADMIN_DSN=${DPONE_TEST_PG_DSN:?scripts/services.sh wrote no DPONE_TEST_PG_DSN}
CH_URL=${DPONE_TEST_CH_URL:?scripts/services.sh wrote no DPONE_TEST_CH_URL}
DB_DSN="$ADMIN_DSN dbname=$PGDB"
export DB_DSN CH_URL CHDB
sql() { PGOPTIONS="-c client_min_messages=warning" psql "$DB_DSN" -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }
chq() {
  local out
  out=$(curl -sS "$CH_URL/" --data-binary "$1") || { echo "ClickHouse: $out" >&2; return 1; }
  case "$out" in Code:*) echo "ClickHouse: $out" >&2; return 1 ;; esac
  printf '%s' "$out"
}

PGOPTIONS="-c client_min_messages=warning" \
  psql "$ADMIN_DSN" -X -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" \
  -c "CREATE DATABASE $PGDB" >/dev/null
chq "DROP DATABASE IF EXISTS $CHDB" >/dev/null
chq "CREATE DATABASE $CHDB" >/dev/null
echo "PostgreSQL $(sql "SELECT current_setting('server_version') || ', fsync=' || current_setting('fsync')"), database $PGDB"
echo "ClickHouse $(chq "SELECT version()") at $CH_URL, database $CHDB"
[ "$(sql "SELECT current_setting('fsync')")" = off ] &&
  echo "note: PostgreSQL runs with fsync OFF (set DPONE_PG_DURABLE=1 when starting the services)"

# --- data ----------------------------------------------------------------------------------
echo "generating $ROWS rows..."
sql "CREATE TABLE src (
       id bigint PRIMARY KEY,
       name text,
       amount numeric(12,2),
       created_at timestamptz(0) NOT NULL,
       attrs jsonb)"
sql "INSERT INTO src
     SELECT g,
            'Customer ' || g || CASE WHEN g % 50 = 0 THEN E', \"Ltd\"\\ttab\\nline' ELSE ', Ltd' END,
            CASE WHEN g % 97 = 0 THEN NULL ELSE ((g::bigint * 7919) % 100000000) / 100.0 END,
            timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second',
            jsonb_build_object('id', g, 'tag', 'tag' || (g % 100), 'score', (g % 89) * 1.25, 'active', g % 3 = 0)
     FROM generate_series(1, $ROWS) g"
sql "VACUUM (FREEZE, ANALYZE) src"
echo "source: $(sql "SELECT pg_size_pretty(pg_total_relation_size('src'))")"

# The table dpone creates for this source (same DDL for the native path).
NATIVE_DDL="CREATE TABLE $CHDB.t_native (id Int64, name Nullable(String), amount Nullable(Decimal(12, 2)),
  created_at DateTime('UTC'), attrs Nullable(String)) ENGINE = MergeTree ORDER BY (id)"
chq "$NATIVE_DDL" >/dev/null

# A loaded target must equal the source: count and column sums.
SRC_SIG=$(sql "SELECT count(*) || ' ' || sum(id) || ' ' || sum(octet_length(name)) || ' ' || sum(amount) || ' ' ||
               sum(extract(epoch FROM created_at)::bigint) FROM src")
check_equal() {
  local sig
  sig=$(chq "SELECT concat(toString(count()), ' ', toString(sum(id)), ' ', toString(sum(length(name))), ' ',
             toString(sum(amount)), ' ', toString(sum(toUInt32(created_at)))) FROM $CHDB.$1")
  if [ "$sig" != "$SRC_SIG" ]; then
    echo "CHECK FAILED: $1 has signature '$sig', src '$SRC_SIG'" >&2
    exit 1
  fi
  echo "check: $1 equals src (count, sums: $sig)"
}

: > "$WORK/native.txt"; : > "$WORK/full.txt"

# --- (a) native ----------------------------------------------------------------------------
echo "(a) native: psql COPY TO STDOUT | curl -T - INSERT FORMAT TabSeparated, $RUNS runs"
INSERT_URL="$CH_URL/?date_time_input_format=best_effort&query=$(printf 'INSERT INTO %s.t_native FORMAT TabSeparated' "$CHDB" | sed 's/ /%20/g')"
export INSERT_URL
for _ in $(seq "$RUNS"); do
  chq "TRUNCATE TABLE $CHDB.t_native" >/dev/null
  # shellcheck disable=SC2016  # expanded by the inner bash
  measure "$WORK/native.txt" bash -c 'set -o pipefail
    psql "$DB_DSN" -X -q -v ON_ERROR_STOP=1 -c "COPY (SELECT * FROM src) TO STDOUT" |
      curl -sS --fail-with-body -T - -X POST "$INSERT_URL"'
done
check_equal t_native
native_wall=$(median_of "$WORK/native.txt" 1)

# --- (b) dpone full_refresh ----------------------------------------------------------------
echo "(b) dpone full_refresh postgres -> clickhouse, $RUNS runs"
declare -A dsn=()
for kv in $DB_DSN; do dsn[${kv%%=*}]=${kv#*=}; done
export DPONE_CONN_PG_TYPE=postgres DPONE_CONN_PG_HOST=${dsn[host]} DPONE_CONN_PG_PORT=${dsn[port]} \
  DPONE_CONN_PG_USER=${dsn[user]} DPONE_CONN_PG_DBNAME=${dsn[dbname]}
export DPONE_CONN_CH_TYPE=clickhouse DPONE_CONN_CH_URL=$CH_URL DPONE_CONN_CH_DATABASE=$CHDB
mkdir -p "$WORK/full"
cat > "$WORK/full/manifest.yaml" <<YAML
kind: dpone.batch.v1
streams:
  - name: pg_ch
    source:
      connector: postgres
      connection: pg
      table: src
    sink:
      connector: clickhouse
      connection: ch
      table: t_dpone
      strategy: {mode: full_refresh}
YAML
# The target stays between runs, as in a repeated production full refresh: each run builds
# the whole new generation in staging and swaps it in.
for _ in $(seq "$RUNS"); do
  measure "$WORK/full.txt" "$DPONE" run "$WORK/full/manifest.yaml" -q ||
    { echo "(b) dpone run failed (its errors are above)" >&2; exit 1; }
done
check_equal t_dpone
# (the report is read whole first: grep stopping early would fail the pipe under pipefail)
report_json=$("$DPONE" run-report --last -m "$WORK/full/manifest.yaml" --format json)
echo "artifact: $(grep -o '"sink_receives": *"[^"]*"' <<<"$report_json" | head -1)"

echo
report pg_to_clickhouse_native "$ROWS" "$WORK/native.txt"
report pg_to_clickhouse_full_refresh "$ROWS" "$WORK/full.txt" "$native_wall"
