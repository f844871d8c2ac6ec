# Shared helpers for benchmark scripts: measure a command's wall, CPU and peak RSS with
# GNU time, take the median of N runs, and print the `bench ...` summary line.
# shellcheck shell=bash

# measure OUTFILE CMD...: appends "wall cpu peak_rss_kb" to OUTFILE.
measure() {
  local out=$1; shift
  local t; t=$(mktemp)
  /usr/bin/time -f "%e %U %S %M" -o "$t" "$@" >/dev/null
  awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$t" >> "$out"
  rm -f "$t"
}

# median_of FILE COLUMN (1-based): the median of a column of numbers.
median_of() {
  sort -g -k"$2","$2" "$1" | awk -v c="$2" '{v[NR]=$c} END {print v[int((NR+1)/2)]}'
}

# report NAME ROWS FILE [NATIVE_WALL]: prints the summary line from the medians.
report() {
  local name=$1 rows=$2 file=$3 native=${4:-}
  local wall cpu rss
  wall=$(median_of "$file" 1); cpu=$(median_of "$file" 2); rss=$(median_of "$file" 3)
  local line
  line=$(awk -v n="$name" -v r="$rows" -v w="$wall" -v c="$cpu" -v m="$rss" \
    'BEGIN {printf "bench %s rows=%d wall_s=%.2f cpu_s=%.2f peak_rss_mb=%.1f rows_per_s=%.0f", n, r, w, c, m/1024, (w > 0 ? r/w : 0)}')
  if [ -n "$native" ]; then
    line="$line $(awk -v w="$wall" -v n="$native" 'BEGIN {printf "ratio_to_native=%.2f", (n > 0 ? w/n : 0)}')"
  fi
  echo "$line"
}
