#!/usr/bin/env bash
# Benchmark: what quality gates cost. A generated CSV (default 500,000 rows) loaded into
# SQLite with full_refresh, three ways:
#   (a) no gates (the baseline: "native" in the ratio below)
#   (b) the eight SQL gates (row_count, min_rows, not_null, unique, accepted_values, range,
#       freshness, custom_sql) on staging
#   (c) typed_hash alone (source side hashed from the batches, staged side in SQL)
# Median of N runs (default 3) each; prints wall, CPU, peak RSS, rows/s and the ratio to (a).
#   bench/gates/run.sh [ROWS] [RUNS]       (env DPONE_BIN: the dpone binary)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$ROOT/bench/lib.sh"
ROWS=${1:-500000}
RUNS=${2:-3}
DPONE=${DPONE_BIN:-$ROOT/build/bin/dpone}
WORK=${BENCH_DIR:-/tmp/dpone-bench-gates}
rm -rf "$WORK"; mkdir -p "$WORK/in"

echo "generating $ROWS rows..."
awk -v n="$ROWS" 'BEGIN {
  print "id,status,amount,qty,created_at,ratio,label";
  srand(42);
  split("new paid shipped", st, " ");
  for (i = 1; i <= n; i++)
    printf "%d,%s,%.2f,%d,2026-11-%02dT%02d:%02d:%02dZ,%.6f,label %d\n",
      i, st[1 + i % 3], rand() * 1000, 1 + i % 50, 1 + i % 25, i % 24, i % 60, (i * 7) % 60, rand(), i;
}' > "$WORK/in/data.csv"

manifest() {  # manifest FILE QUALITY_YAML
  cat > "$1" <<YAML
kind: dpone.batch.v1
streams:
  - name: orders
    source:
      connector: files
      path: in/data.csv
      columns: {id: int64, status: string, amount: "decimal(10,2)", qty: int32, created_at: timestamptz, ratio: float64, label: string}
    sink:
      connector: sqlite
      path: dpone.db
      table: orders
      strategy: {mode: full_refresh, allow_shrink: true}
$2
YAML
}
manifest "$WORK/none.yaml" "    quality: []"
manifest "$WORK/sql.yaml" "    quality:
      - {type: row_count}
      - {type: min_rows, min: 1}
      - {type: not_null, columns: [id, status]}
      - {type: unique, columns: id}
      - {type: accepted_values, columns: status, values: [new, paid, shipped]}
      - {type: range, columns: amount, min: 0, max: 1000}
      - {type: freshness, columns: created_at, max_age: 3650d}
      - {type: custom_sql, sql: \"SELECT id FROM {staging} WHERE qty > 100\"}"
manifest "$WORK/hash.yaml" "    quality:
      - {type: typed_hash}"

for variant in none sql hash; do
  : > "$WORK/$variant.txt"
  for _ in $(seq "$RUNS"); do
    rm -rf "$WORK/dpone.db" "$WORK/.dpone"
    measure "$WORK/$variant.txt" "$DPONE" -q run "$WORK/$variant.yaml"
    loaded=$(sqlite3 "$WORK/dpone.db" "SELECT count(*) FROM orders")
    [ "$loaded" = "$ROWS" ] || { echo "$variant: loaded $loaded rows, expected $ROWS" >&2; exit 1; }
  done
done
base=$(median_of "$WORK/none.txt" 1)
report gates_none "$ROWS" "$WORK/none.txt"
report gates_sql8 "$ROWS" "$WORK/sql.txt" "$base"
report gates_typed_hash "$ROWS" "$WORK/hash.txt" "$base"
