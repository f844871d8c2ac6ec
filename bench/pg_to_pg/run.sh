#!/usr/bin/env bash
# Benchmark: PostgreSQL -> PostgreSQL on one generated table (default 5,000,000 rows:
# id bigint PK, text, numeric(12,2), timestamptz, jsonb), all parts in the same run:
#   (a) native: psql `COPY src TO STDOUT (FORMAT binary)` | psql `COPY ... FROM STDIN
#       (FORMAT binary)` into an empty table of the same definition (primary key included)
#   (b) dpone full_refresh, one stream postgres -> postgres, into an empty target
#   (c) (b) with `parallel: 2`, only if the postgres connector declares that source option
#   (d) dpone merge of 10% changed rows into the target loaded by (b); for reference, the
#       native equivalent (binary COPY of those rows into a temp table + INSERT ... ON
#       CONFLICT DO UPDATE) is timed too
#   (e) (b) with the internal query path: source and sink are the same database here, so by
#       default dpone runs INSERT INTO <staging> SELECT ... on the server and no row passes
#       through it. (b), (c) and (d) set `internal_query: false` to measure the COPY path.
# (a), (b), (c), (e) run interleaved, in RUNS rounds. Median of RUNS (default 3) each; prints wall, CPU, peak RSS, rows/s and the ratio to (a).
# CPU and peak RSS are the client side only (psql, dpone); server work shows in wall time.
#   bench/pg_to_pg/run.sh [ROWS] [RUNS]
# Environment:
#   DPONE_BIN     the dpone binary (default build/bin/dpone)
#   BENCH_PG_DSN  libpq keyword DSN ("host=... port=... user=... [password=...]") of the cluster
#                 to use, as a role that may create databases. Default: the test service of
#                 scripts/services.sh (started, and stopped again, if not running), which runs
#                 with fsync=off: the output says so.
#   BENCH_PG_DB   database created for the benchmark, DROPPED first (default dpone_bench)
#   BENCH_DIR     work directory for manifests and state (default /tmp/dpone-bench-pg)
#   BENCH_KEEP_DB=1  keep the benchmark database afterwards (default: dropped)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ROWS=${1:-5000000}
RUNS=${2:-3}
DPONE=${DPONE_BIN:-$ROOT/build/bin/dpone}
WORK=${BENCH_DIR:-/tmp/dpone-bench-pg}
DB=${BENCH_PG_DB:-dpone_bench}
SERVICES_DIR=${DPONE_SERVICES_DIR:-/tmp/dpone-services}
[[ "$DB" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "BENCH_PG_DB must be a plain lowercase name" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql not found: scripts/install-deps.sh" >&2; exit 3; }
rm -rf "$WORK"; mkdir -p "$WORK"

# --- the cluster ---------------------------------------------------------------------------
started_service=0
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ "${BENCH_KEEP_DB:-0}" != 1 ] && [ -n "${ADMIN_DSN:-}" ]; then
    psql "$ADMIN_DSN" -XAtq -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ "$started_service" = 1 ]; then "$ROOT/scripts/services.sh" stop postgres >/dev/null; fi
}
trap cleanup EXIT

if [ -n "${BENCH_PG_DSN:-}" ]; then
  ADMIN_DSN=$BENCH_PG_DSN
  cluster_note="cluster: BENCH_PG_DSN"
else
  if ! "$ROOT/scripts/services.sh" status postgres >/dev/null; then
    "$ROOT/scripts/services.sh" start postgres
    started_service=1
  fi
  # shellcheck source=/dev/null
  source "$SERVICES_DIR/env.sh"
  ADMIN_DSN=${DPONE_TEST_PG_DSN:?scripts/services.sh wrote no DPONE_TEST_PG_DSN}
  cluster_note="cluster: the test service of scripts/services.sh (set BENCH_PG_DSN for another)"
fi
case "$ADMIN_DSN" in
  postgres://*|postgresql://*) echo "BENCH_PG_DSN: give a keyword DSN (host=... port=...), not a URI" >&2; exit 2 ;;
esac
DB_DSN="$ADMIN_DSN dbname=$DB"   # libpq: the last dbname wins
export DB_DSN
# Server NOTICEs (DROP ... IF EXISTS) are noise here; PGOPTIONS only for these psql calls.
sql() { PGOPTIONS="-c client_min_messages=warning" psql "$DB_DSN" -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }

PGOPTIONS="-c client_min_messages=warning" \
  psql "$ADMIN_DSN" -X -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
  -c "CREATE DATABASE $DB" >/dev/null
settings=$(sql "SELECT current_setting('server_version') || ' at ' || coalesce(inet_server_addr()::text, 'socket') || ':' || current_setting('port') || ', fsync=' || current_setting('fsync') || ' synchronous_commit=' || current_setting('synchronous_commit') || ' full_page_writes=' || current_setting('full_page_writes') || ' shared_buffers=' || current_setting('shared_buffers')")
echo "$cluster_note"
echo "server: PostgreSQL $settings, database $DB"
if [ "$(sql "SELECT current_setting('fsync')")" = off ]; then
  echo "note: fsync is OFF on this cluster (the throwaway test service): commits do not wait for"
  echo "      the disk, for the native pipe and dpone alike; for durable numbers set BENCH_PG_DSN"
  echo "      to a cluster with fsync on (e.g. DPONE_SERVICES_DIR=/tmp/bench-svc DPONE_PG_PORT=54330"
  echo "      DPONE_PG_DURABLE=1 scripts/services.sh start)"
fi

# --- JSON from dpone, read with the server (no jq needed) ----------------------------------
# json_eval JSON EXPR [MORE_FROM]: EXPR over the jsonb value `j` (FROM ... s MORE_FROM),
# one result row per line.
json_eval() {
  printf 'SELECT %s FROM (SELECT :%s::jsonb AS j) s %s;\n' "$2" "'j'" "${3:-}" |
    psql "$ADMIN_DSN" -X -A -t -q -v ON_ERROR_STOP=1 -v j="$1"
}

# --- is the dpone side runnable? -----------------------------------------------------------
missing=""
describe=""
if [ ! -x "$DPONE" ]; then
  missing="no dpone binary at $DPONE (build it: scripts/build.sh, or set DPONE_BIN)"
else
  list=$("$DPONE" connectors list --format json) || { echo "$DPONE connectors list failed" >&2; exit 1; }
  pg_state=$(json_eval "$list" "coalesce((SELECT CASE WHEN (e->>'available')::bool THEN 'available' ELSE 'unavailable: ' || coalesce(e->>'reason', '') END FROM jsonb_array_elements(j) e WHERE e->>'name' = 'postgres'), 'absent')")
  case "$pg_state" in
    available) describe=$("$DPONE" connectors describe postgres --format json) ;;
    absent) missing="the postgres connector is not in this build ($DPONE connectors list has no 'postgres': src/connectors/postgres not built yet?)" ;;
    *) missing="the postgres connector is $pg_state" ;;
  esac
fi
if [ -n "$describe" ]; then
  has() { [ "$(json_eval "$describe" "coalesce($1, false)")" = t ]; }
  has "j->'source'->'options' ? 'table'" || missing="the postgres connector declares no source option 'table'"
  has "j->'sink'->'options' ? 'table'" || missing="the postgres connector declares no sink option 'table'"
  has "j->'sink'->'strategies' ? 'full_refresh'" || missing="the postgres sink does not declare full_refresh"
fi
if [ -n "$missing" ]; then
  echo "dpone: NOT AVAILABLE: $missing"
  echo "dpone: parts (b), (c), (d) will be skipped; only the native paths are measured"
else
  echo "dpone: $DPONE, connector module $(json_eval "$list" "e->>'module'" ", jsonb_array_elements(s.j) e WHERE e->>'name' = 'postgres'")"
fi

# DPONE_CONN_PG_<FIELD> for every connection field the connector declares, taken from the DSN.
declare -A dsn=()
for kv in $DB_DSN; do
  [[ "$kv" == *=* ]] || { echo "cannot parse DSN item '$kv' (keyword DSN without quotes expected)" >&2; exit 2; }
  dsn[${kv%%=*}]=${kv#*=}
done
if [ -z "$missing" ]; then
  export DPONE_CONN_PG_TYPE=postgres
  while IFS='|' read -r field required; do
    [ -z "$field" ] && continue
    case "$field" in
      host|hostaddr|port|user|password|sslmode|dbname) value=${dsn[$field]:-} ;;
      username) value=${dsn[user]:-} ;;
      database|db) value=${dsn[dbname]:-} ;;
      dsn|conninfo|connection_string) value=$DB_DSN ;;
      *) value="" ;;
    esac
    if [ -n "$value" ]; then
      export "DPONE_CONN_PG_${field^^}=$value"
    elif [ "$required" = t ]; then
      missing="the postgres connection field '$field' is required and the DSN has no value for it"
    fi
  done < <(json_eval "$describe" "f.key || '|' || coalesce((f.value->>'required')::bool, false)" \
             ", jsonb_each(s.j->'connection'->'fields') f")
fi
[ -z "$missing" ] && env | grep '^DPONE_CONN_PG_' | sed -E 's/^(DPONE_CONN_PG_PASSWORD=).*/\1***/; s/^/connection: /'

# --- data ----------------------------------------------------------------------------------
echo "generating $ROWS rows..."
gen_start=$(date +%s.%N)
sql "CREATE TABLE src (
       id bigint PRIMARY KEY,
       name text,
       amount numeric(12,2),
       created_at timestamptz NOT NULL,
       attrs jsonb)"
sql "SELECT setseed(0.42);
     INSERT INTO src
     SELECT g,
            'Customer ' || g || CASE WHEN g % 50 = 0 THEN E', \"Ltd\"\\ttab\\nline' ELSE ', Ltd' END,
            CASE WHEN g % 97 = 0 THEN NULL ELSE round((random() * 1000000)::numeric, 2) END,
            timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' + (g % 1000) * interval '1 microsecond',
            jsonb_build_object('id', g, 'tag', 'tag' || (g % 100), 'score', (g % 89) * 1.25, 'active', g % 3 = 0)
     FROM generate_series(1, $ROWS) g" >/dev/null   # (setseed prints an empty row)
sql "VACUUM (FREEZE, ANALYZE) src"
sql "CREATE TABLE t_native (LIKE src INCLUDING ALL)"
echo "source: $(sql "SELECT pg_size_pretty(pg_total_relation_size('src'))") in $(awk -v s="$gen_start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s"

# Same rows, same values, both ways: a loaded target must equal the source exactly.
check_equal() {
  local target=$1 n diff
  n=$(sql "SELECT count(*) FROM $target")
  diff=$(sql "SELECT (SELECT count(*) FROM (SELECT * FROM src EXCEPT ALL SELECT * FROM $target) a)
                   + (SELECT count(*) FROM (SELECT * FROM $target EXCEPT ALL SELECT * FROM src) b)")
  if [ "$n" != "$ROWS" ] || [ "$diff" != 0 ]; then
    echo "CHECK FAILED: $target has $n rows (expected $ROWS) and $diff rows differing from src" >&2
    exit 1
  fi
  echo "check: $target equals src ($n rows)"
}

# Source and sink are one database: (b)-(d) measure the COPY path, so they turn the internal
# query path off where the connector has it ((e) measures that path).
COPY_PATH=""
[ -z "$missing" ] && [ "$(json_eval "$describe" "coalesce(j->'source'->'options' ? 'internal_query', false)")" = t ] &&
  COPY_PATH="
      internal_query: false"

# dpone_manifest DIR STREAM SOURCE_OPTION_LINES TARGET STRATEGY
dpone_manifest() {
  mkdir -p "$1"
  cat > "$1/manifest.yaml" <<YAML
kind: dpone.batch.v1
streams:
  - name: $2
    source:
      connector: postgres
      connection: pg
$3
    sink:
      connector: postgres
      connection: pg
      table: $4
      strategy: $5
YAML
}

: > "$WORK/native.txt"; : > "$WORK/full.txt"; : > "$WORK/parallel.txt"; : > "$WORK/internal.txt"
: > "$WORK/merge_native.txt"; : > "$WORK/merge.txt"
skips=()

# (a), (b), (c) and (e) run in rounds (a b c e, a b c e, ...), each from a checkpoint and an
# empty target, so a machine that slows down or speeds up during the benchmark (other load,
# the page cache, autovacuum) shifts every configuration alike and the ratios stay fair.
native_run() {
  sql "TRUNCATE t_native"; sql "CHECKPOINT"
  # shellcheck disable=SC2016  # expanded by the inner bash
  measure "$WORK/native.txt" bash -c 'set -o pipefail
    psql "$DB_DSN" -X -q -v ON_ERROR_STOP=1 -c "COPY src TO STDOUT (FORMAT binary)" |
      psql "$DB_DSN" -X -q -v ON_ERROR_STOP=1 -c "COPY t_native FROM STDIN (FORMAT binary)"'
}
# dpone_run LABEL TARGET DIR OUT: one run into a fresh empty target; the stream's state and
# load receipts stay, as in a repeated production full refresh.
dpone_run() {
  sql "DROP TABLE IF EXISTS $2"; sql "CREATE TABLE $2 (LIKE src INCLUDING ALL)"
  sql "CHECKPOINT"
  measure "$WORK/$4" "$DPONE" run "$WORK/$3/manifest.yaml" -q ||
    { echo "$1 dpone run failed (its errors are above)" >&2; exit 1; }
}
configs=("(a) native: psql COPY binary | psql COPY binary")
run_b=0 run_c=0 run_e=0
if [ -z "$missing" ]; then
  run_b=1; configs+=("(b) dpone full_refresh")
  dpone_manifest "$WORK/full" pg_full "      table: src$COPY_PATH" t_dpone "{mode: full_refresh}"
  if [ "$(json_eval "$describe" "coalesce(j->'source'->'options' ? 'parallel', false)")" != t ]; then
    skips+=("skip (c): parallel not implemented (the postgres connector declares no 'parallel' source option)")
  else
    run_c=1; configs+=("(c) dpone full_refresh with parallel: 2")
    dpone_manifest "$WORK/parallel" pg_parallel "      table: src
      parallel: 2$COPY_PATH" t_dpone_par "{mode: full_refresh}"
  fi
  if [ -n "$COPY_PATH" ]; then
    run_e=1; configs+=("(e) dpone full_refresh on the server (internal query)")
    dpone_manifest "$WORK/internal" pg_internal "      table: src" t_dpone_iq "{mode: full_refresh}"
  else
    skips+=("skip (e): the postgres connector declares no 'internal_query' source option")
  fi
else
  skips+=("skip (b): $missing" "skip (c): $missing")
fi
echo "$RUNS rounds of: $(IFS=';'; echo "${configs[*]}")"
for round in $(seq "$RUNS"); do
  echo "round $round"
  native_run
  if [ "$run_b" = 1 ]; then dpone_run "(b)" t_dpone full full.txt; fi
  if [ "$run_c" = 1 ]; then dpone_run "(c)" t_dpone_par parallel parallel.txt; fi
  if [ "$run_e" = 1 ]; then dpone_run "(e)" t_dpone_iq internal internal.txt; fi
done
check_equal t_native
native_wall=$(median_of "$WORK/native.txt" 1)
if [ "$run_b" = 1 ]; then check_equal t_dpone; fi
if [ "$run_c" = 1 ]; then check_equal t_dpone_par; sql "DROP TABLE t_dpone_par"; fi
if [ "$run_e" = 1 ]; then
  check_equal t_dpone_iq
  iq=$("$DPONE" run-report --last -m "$WORK/internal/manifest.yaml" --format json)
  grep -q '"source_produces": *"internal_query' <<<"$iq" ||
    { echo "CHECK FAILED: (e) did not take the internal query path" >&2; exit 1; }
  sql "DROP TABLE t_dpone_iq"
fi

# --- (d) merge of 10% changed rows ---------------------------------------------------------
# Each run updates the same 10% of the source (id % 10 = 0; new values every run), then
# merges them: natively into t_native (loaded by (a)) and with dpone into t_dpone (loaded
# by (b)). dpone finds the changed rows by xmin when the connector offers it, else reads
# them with a query.
CHANGED=$(sql "SELECT count(*) FROM src WHERE id % 10 = 0")
merge_how=""
if [ -z "$missing" ]; then
  if ! json_eval "$describe" "coalesce(j->'sink'->'strategies' ? 'merge', false)" | grep -qx t; then
    skips+=("skip (d): the postgres sink does not declare the merge strategy")
  elif json_eval "$describe" "coalesce(j->'source'->'incremental' ? 'xmin', false)" | grep -qx t; then
    merge_how="rows changed since the last run, found by xmin"
    dpone_manifest "$WORK/merge" pg_merge "      table: src
      incremental: xmin$COPY_PATH" t_dpone "{mode: merge, unique_key: [id]}"
    echo "(d) priming the xmin stream (first run: full snapshot, not timed)"
    "$DPONE" run "$WORK/merge/manifest.yaml" -q ||
      { echo "(d) priming dpone run failed (its errors are above)" >&2; exit 1; }
  elif json_eval "$describe" "coalesce(j->'source'->'options' ? 'query', false)" | grep -qx t; then
    merge_how="the changed rows selected by a query (the connector offers no xmin)"
    dpone_manifest "$WORK/merge" pg_merge "      query: \"SELECT * FROM src WHERE id % 10 = 0\"$COPY_PATH" \
      t_dpone "{mode: merge, unique_key: [id]}"
  else
    skips+=("skip (d): the postgres source offers neither xmin nor query to read only the changed rows")
  fi
fi
echo "(d) merge of $CHANGED changed rows (10%), $RUNS runs${merge_how:+; dpone reads $merge_how}"
for i in $(seq "$RUNS"); do
  sql "UPDATE src SET amount = CASE WHEN amount IS NULL THEN NULL ELSE amount + $i END,
                      attrs = attrs || jsonb_build_object('rev', $i)
       WHERE id % 10 = 0"
  sql "VACUUM src"; sql "VACUUM t_native"; sql "CHECKPOINT"
  # shellcheck disable=SC2016  # expanded by the inner bash
  measure "$WORK/merge_native.txt" bash -c 'set -o pipefail
    psql "$DB_DSN" -X -q -v ON_ERROR_STOP=1 -c "COPY (SELECT * FROM src WHERE id % 10 = 0) TO STDOUT (FORMAT binary)" |
      psql "$DB_DSN" -X -q -v ON_ERROR_STOP=1 -1 \
        -c "CREATE TEMP TABLE stg (LIKE t_native)" \
        -c "COPY stg FROM STDIN (FORMAT binary)" \
        -c "INSERT INTO t_native SELECT * FROM stg ON CONFLICT (id) DO UPDATE SET name = excluded.name,
              amount = excluded.amount, created_at = excluded.created_at, attrs = excluded.attrs"'
  if [ -n "$merge_how" ]; then
    sql "VACUUM t_dpone"; sql "CHECKPOINT"
    measure "$WORK/merge.txt" "$DPONE" run "$WORK/merge/manifest.yaml" -q ||
      { echo "(d) dpone run failed (its errors are above)" >&2; exit 1; }
  fi
done
check_equal t_native
if [ -n "$merge_how" ]; then
  check_equal t_dpone
  # The timed merge must have moved the changed rows only, not the whole table.
  last=$("$DPONE" run-report --last -m "$WORK/merge/manifest.yaml" --format json)
  moved=$(json_eval "$last" "(j->'streams'->0->'rows'->>'extracted') || ' ' || (j->'streams'->0->'rows'->>'updated')")
  [ "$moved" = "$CHANGED $CHANGED" ] ||
    { echo "CHECK FAILED: the last dpone merge extracted/updated $moved rows, expected $CHANGED" >&2; exit 1; }
  echo "check: the last dpone merge extracted and updated $CHANGED rows"
fi
[ -z "$missing" ] || skips+=("skip (d): $missing")

# --- summary -------------------------------------------------------------------------------
echo
for s in "${skips[@]}"; do echo "$s"; done
report pg_to_pg_native "$ROWS" "$WORK/native.txt"
[ -s "$WORK/full.txt" ] && report pg_to_pg_full_refresh "$ROWS" "$WORK/full.txt" "$native_wall"
[ -s "$WORK/parallel.txt" ] && report pg_to_pg_full_refresh_parallel2 "$ROWS" "$WORK/parallel.txt" "$native_wall"
[ -s "$WORK/internal.txt" ] && report pg_to_pg_full_refresh_internal_query "$ROWS" "$WORK/internal.txt" "$native_wall"
if [ -s "$WORK/merge.txt" ]; then
  echo "note: merge10 ratio_to_native is to (a); to the native merge it is $(awk -v d="$(median_of "$WORK/merge.txt" 1)" -v n="$(median_of "$WORK/merge_native.txt" 1)" 'BEGIN {printf "%.2f", (n > 0 ? d/n : 0)}')"
fi
report pg_to_pg_merge10_native "$CHANGED" "$WORK/merge_native.txt"
[ -s "$WORK/merge.txt" ] && report pg_to_pg_merge10 "$CHANGED" "$WORK/merge.txt" "$native_wall"
if [ -n "$missing" ]; then
  echo "bench pg_to_pg: dpone parts not run: $missing" >&2
  exit 3
fi
exit 0
