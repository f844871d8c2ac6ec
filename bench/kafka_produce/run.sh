#!/usr/bin/env bash
# Benchmark: 1,000,000 JSON events (~100 bytes each) produced to Kafka.
#   (a) native: kcat -P producing the JSONL file, one message per line (no key) - the
#       issue's baseline, and the denominator of every ratio_to_native below
#   (a') native, like for like for (c): kcat producing the same events keyed by id, with
#       the idempotent producer
#   (a'') native, like for like for (b-h): kcat producing the file unkeyed with the
#       dpone-run-id header
#       and the idempotent producer (the header adds ~40 bytes to each ~95-byte event, so it
#       costs kcat itself ~1.5x its plain time here)
#   (b) dpone files (JSONL) -> kafka sink with its defaults, against (a): no declared
#       columns, so the lines pass through as bytes (WireFormat::Jsonl): each line validated
#       as one JSON object (simdjson) and produced as is, no headers (the run record keeps
#       the delivered offsets instead), the idempotent producer, every report awaited
#   (b-h) the same with `headers: [run_id]`: the like-for-like of (a'')
#   (b') the same file with declared columns: every field parsed, converted and checked
#       against its type, the row re-encoded as JSON (the record-batch path)
#   (c) dpone sqlite -> kafka sink, keyed by id (murmur2 partitioning)
# The broker is a private dpone_kafka_mock (librdkafka's mock cluster, 3 brokers) started and
# stopped by this script; every measured run writes to a fresh 16-partition topic (the mock
# keeps only the newest ~5 MiB per partition, which is fine: nothing is read back here
# except the event count of the last dpone topic, checked from the high watermarks).
# Median of N runs (default 3) each; prints events/s, wall, CPU, peak RSS and the ratio.
#   bench/kafka_produce/run.sh [EVENTS] [RUNS]
#   env: DPONE_BIN (the dpone binary), DPONE_KAFKA_MOCK (the mock binary)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$ROOT/bench/lib.sh"
EVENTS=${1:-1000000}
RUNS=${2:-3}
DPONE=${DPONE_BIN:-$ROOT/build/bin/dpone}
MOCK=${DPONE_KAFKA_MOCK:-$(dirname "$DPONE")/dpone_kafka_mock}
WORK=${BENCH_DIR:-/tmp/dpone-bench-kafka}
command -v kcat >/dev/null || { echo "kcat is not installed (apt-get install kcat)" >&2; exit 1; }
[ -x "$MOCK" ] || { echo "$MOCK not found: build the dpone_kafka_mock target" >&2; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK/in"

"$MOCK" --brokers 3 --bootstrap-file "$WORK/bootstrap" --control "$WORK/control" > "$WORK/mock.log" 2>&1 &
MOCK_PID=$!
trap 'kill "$MOCK_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$WORK/bootstrap" ] && break; sleep 0.05; done
BOOT=$(cat "$WORK/bootstrap")
TOPICS=0
new_topic() {  # creates bench_<n> with 16 partitions; its name in $t
  TOPICS=$((TOPICS + 1))
  t=bench_$TOPICS
  echo "topic $t 16" > "$WORK/control"
  for _ in $(seq 100); do grep -q "^ok topic $t " "$WORK/control.ack" 2>/dev/null && break; sleep 0.02; done
}

echo "generating $EVENTS events..."
awk -v n="$EVENTS" 'BEGIN {
  srand(42);
  for (i = 1; i <= n; i++)
    printf "{\"id\":%d,\"customer\":\"customer-%d\",\"amount\":%.2f,\"at\":\"2026-11-%02dT%02d:%02d:%02dZ\",\"ok\":%s}\n",
      i, i % 5000, rand() * 10000, 1 + i % 28, i % 24, i % 60, (i * 7) % 60, (i % 3 ? "true" : "false");
}' > "$WORK/in/events.jsonl"
echo "input: $(du -h "$WORK/in/events.jsonl" | cut -f1), $(awk '{s += length($0)} END {printf "%.0f", s / NR}' "$WORK/in/events.jsonl") bytes per event"
sqlite3 "$WORK/events.db" "CREATE TABLE events (id INTEGER PRIMARY KEY, customer TEXT, amount DECIMAL(12,2), at TEXT, ok BOOLEAN);"
python3 - "$WORK/in/events.jsonl" "$WORK/events.db" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[2])
with open(sys.argv[1]) as f:
    db.executemany("INSERT INTO events VALUES (?,?,?,?,?)",
                   ((e["id"], e["customer"], e["amount"], e["at"], e["ok"]) for e in map(json.loads, f)))
db.commit()
PY

manifest() {  # manifest NAME SOURCE_YAML TOPIC EXTRA_STRATEGY_YAML [EXTRA_SINK_LINE]
  cat > "$WORK/$1.yaml" <<YAML
kind: dpone.batch.v1
streams:
  - name: $1
    source: $2
    sink:
      connector: kafka
      bootstrap_servers: "$BOOT"
      topic: $3
      strategy: {mode: append$4}
      ${5:-}
YAML
}
FILE_SRC='{connector: files, path: in/events.jsonl, format: jsonl, incremental: full}'
TYPED_SRC='{connector: files, path: in/events.jsonl, format: jsonl, incremental: full, columns: {id: int64, customer: string, amount: "decimal(12,2)", at: timestamptz, ok: bool}}'
SQLITE_SRC='{connector: sqlite, path: events.db, table: events}'

awk -F'[:,]' '{print $2 "|" $0}' "$WORK/in/events.jsonl" > "$WORK/in/keyed.txt"  # "id|event"
: > "$WORK/native.txt"; : > "$WORK/native_keyed.txt"; : > "$WORK/native_headers.txt"; : > "$WORK/dpone_file.txt"; : > "$WORK/dpone_file_header.txt"; : > "$WORK/dpone_typed.txt"; : > "$WORK/dpone_sqlite.txt"
for i in $(seq "$RUNS"); do
  new_topic
  measure "$WORK/native.txt" kcat -P -b "$BOOT" -t "$t" -l "$WORK/in/events.jsonl"
  new_topic
  measure "$WORK/native_keyed.txt" kcat -P -b "$BOOT" -t "$t" -K'|' -X enable.idempotence=true \
    -l "$WORK/in/keyed.txt"
  new_topic
  measure "$WORK/native_headers.txt" kcat -P -b "$BOOT" -t "$t" -X enable.idempotence=true \
    -H dpone-run-id=20261126T000000.000000Z-0000 -l "$WORK/in/events.jsonl"
  new_topic; last_header_topic=$t
  manifest file_to_kafka_header "$FILE_SRC" "$t" "" "headers: [run_id]"
  rm -rf "$WORK/.dpone"
  (cd "$WORK" && measure "$WORK/dpone_file_header.txt" "$DPONE" -q run file_to_kafka_header.yaml)
  new_topic; last_file_topic=$t
  manifest file_to_kafka "$FILE_SRC" "$t" ""
  rm -rf "$WORK/.dpone"
  (cd "$WORK" && measure "$WORK/dpone_file.txt" "$DPONE" -q run file_to_kafka.yaml)
  # (the report is read whole first: grep -q stopping early would fail the pipe under pipefail)
  report_json=$(cd "$WORK" && "$DPONE" run-report --last -m file_to_kafka.yaml --format json)
  grep -q '"sink_receives": *"streaming_rows/jsonl"' <<<"$report_json" ||
    { echo "the file run did not take the JSON-lines pass-through" >&2; exit 1; }
  if [ "${KAFKA_BENCH_TYPED:-1}" = 1 ]; then
    new_topic; last_typed_topic=$t
    manifest typed_to_kafka "$TYPED_SRC" "$t" ""
    rm -rf "$WORK/.dpone"
    (cd "$WORK" && measure "$WORK/dpone_typed.txt" "$DPONE" -q run typed_to_kafka.yaml)
  fi
  new_topic; last_sqlite_topic=$t
  manifest sqlite_to_kafka "$SQLITE_SRC" "$t" ", unique_key: [id]"
  rm -rf "$WORK/.dpone"
  (cd "$WORK" && measure "$WORK/dpone_sqlite.txt" "$DPONE" -q run sqlite_to_kafka.yaml)
done
# Every event delivered: the high watermarks of the last topics add up to EVENTS.
count() {
  kcat -Q -b "$BOOT" $(for p in $(seq 0 15); do printf -- "-t %s:%d:-1 " "$1" "$p"; done) 2>/dev/null |
    awk '/offset/ {for (i = 1; i <= NF; i++) if ($i == "offset") s += $(i + 1)} END {print s + 0}'
}
for t in "$last_file_topic" "$last_header_topic" "$last_sqlite_topic" ${last_typed_topic:-}; do
  n=$(count "$t")
  [ "$n" = "$EVENTS" ] || { echo "topic $t holds $n events, expected $EVENTS" >&2; exit 1; }
done
native_wall=$(median_of "$WORK/native.txt" 1)
for f in native native_keyed native_headers dpone_file dpone_file_header dpone_typed dpone_sqlite; do
  [ -s "$WORK/$f.txt" ] || continue
  w=$(median_of "$WORK/$f.txt" 1)
  echo "$f: median $(awk -v n="$EVENTS" -v w="$w" 'BEGIN {printf "%.0f events/s, wall %.2f s", n / w, w}')"
done
report kafka_produce_kcat "$EVENTS" "$WORK/native.txt"
report kafka_produce_kcat_keyed "$EVENTS" "$WORK/native_keyed.txt" "$native_wall"
report kafka_produce_kcat_headers "$EVENTS" "$WORK/native_headers.txt" "$native_wall"
report kafka_produce_files "$EVENTS" "$WORK/dpone_file.txt" "$native_wall"
report kafka_produce_files_run_id_header "$EVENTS" "$WORK/dpone_file_header.txt" "$native_wall"
[ -s "$WORK/dpone_typed.txt" ] && report kafka_produce_files_typed "$EVENTS" "$WORK/dpone_typed.txt" "$native_wall"
report kafka_produce_sqlite_keyed "$EVENTS" "$WORK/dpone_sqlite.txt" "$native_wall"
# The same dpone runs against the like-for-like kcat (the header, idempotence; keys for sqlite).
report kafka_produce_files_run_id_header_vs_kcat_headers "$EVENTS" "$WORK/dpone_file_header.txt" "$(median_of "$WORK/native_headers.txt" 1)"
report kafka_produce_sqlite_keyed_vs_kcat_keyed "$EVENTS" "$WORK/dpone_sqlite.txt" "$(median_of "$WORK/native_keyed.txt" 1)"
