#!/usr/bin/env bash
# Benchmark: a generated CSV (default 1,000,000 rows) loaded into SQLite.
#   (a) native: sqlite3 CLI `.import --csv` into an existing table, in one transaction
#   (b) dpone full_refresh (files -> sqlite: parse, type-check every cell, stage, promote)
# Median of N runs (default 3) each; prints wall, CPU, peak RSS, rows/s and the ratio.
#   bench/csv_to_sqlite/run.sh [ROWS] [RUNS]       (env DPONE_BIN: the dpone binary)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$ROOT/bench/lib.sh"
ROWS=${1:-1000000}
RUNS=${2:-3}
DPONE=${DPONE_BIN:-$ROOT/build/bin/dpone}
WORK=${BENCH_DIR:-/tmp/dpone-bench-csv}
rm -rf "$WORK"; mkdir -p "$WORK/in"

echo "generating $ROWS rows..."
awk -v n="$ROWS" 'BEGIN {
  print "id,name,email,amount,created_at,active";
  srand(42);
  for (i = 1; i <= n; i++)
    printf "%d,\"Customer %d, Ltd\",user%d@example.com,%.2f,2026-%02d-%02d %02d:%02d:%02d,%s\n",
      i, i, i, rand() * 10000, 1 + i % 12, 1 + i % 28, i % 24, i % 60, (i * 7) % 60, (i % 3 ? "true" : "false");
}' > "$WORK/in/data.csv"
echo "input: $(du -h "$WORK/in/data.csv" | cut -f1)"

cat > "$WORK/manifest.yaml" <<YAML
kind: dpone.batch.v1
streams:
  - name: customers
    source:
      connector: files
      path: in/data.csv
      columns: {id: int64, amount: "decimal(12,2)", created_at: timestamp, active: bool}
    sink:
      connector: sqlite
      path: dpone.db
      table: customers
      strategy: {mode: full_refresh, allow_shrink: true}
YAML

native_import() {
  rm -f "$WORK/native.db"
  sqlite3 "$WORK/native.db" "CREATE TABLE customers (id BIGINT, name TEXT, email TEXT, amount TEXT, created_at TEXT, active TEXT);"
  sqlite3 "$WORK/native.db" ".mode csv" ".import --skip 1 $WORK/in/data.csv customers"
}
export -f native_import; export WORK

: > "$WORK/native.txt"; : > "$WORK/dpone.txt"
for i in $(seq "$RUNS"); do
  measure "$WORK/native.txt" bash -c native_import
  rm -rf "$WORK/dpone.db" "$WORK/.dpone"
  measure "$WORK/dpone.txt" "$DPONE" -q run "$WORK/manifest.yaml"
done
loaded=$(sqlite3 "$WORK/dpone.db" "SELECT count(*) FROM customers")
[ "$loaded" = "$ROWS" ] || { echo "dpone loaded $loaded rows, expected $ROWS" >&2; exit 1; }
native_wall=$(median_of "$WORK/native.txt" 1)
report csv_to_sqlite_native "$ROWS" "$WORK/native.txt"
report csv_to_sqlite "$ROWS" "$WORK/dpone.txt" "$native_wall"
