# shellcheck shell=bash
# ClickHouse 26 test service, sourced by scripts/services.sh (which defines ROOT, say, die,
# is_root). Debian ships only ClickHouse 18.16; ClickHouse 26.5 comes as libchdb.so, an
# in-process library, inside the npm package @chdb/lib-linux-x64-gnu. It has no network
# listener, so dpone_chdb_adapter (tests/services/chdb_adapter/) serves the ClickHouse HTTP
# interface in front of it on 127.0.0.1. Writes $ROOT/clickhouse26.env:
#   DPONE_TEST_CH26_URL  http://127.0.0.1:<port>
# Point DPONE_TEST_CH_URL at it to run the ClickHouse tests against 26.x.
# Environment:
#   DPONE_CH26_HTTP_PORT  adapter port on 127.0.0.1 (default 58124)
#   DPONE_CHDB_VERSION    npm package version (default 26.5.3, the one measured)
#   DPONE_CHDB_CACHE      where libchdb.so is kept across runs (default ~/.cache/dpone/chdb);
#                         the 166 MB package is downloaded once per version (npm pack), no
#                         node runs at service time
#   DPONE_BUILD_DIR       build directory (default <repo>/build); the adapter target
#                         dpone_chdb_adapter is built there when missing
#   DPONE_CHDB_ADAPTER    use this adapter binary instead
#
# Opt-in: a plain `scripts/services.sh start` (as scripts/test.sh runs it) leaves it alone;
# it starts when named (`scripts/services.sh start clickhouse26`) or with DPONE_CH26=1.
# services.sh sources this file without arguments, so "$@" here is its own command line.
CH26_WANTED=${DPONE_CH26:-0}
for ch26_arg in "${@:2}"; do [ "$ch26_arg" = clickhouse26 ] && CH26_WANTED=1; done
CH26_PORT=${DPONE_CH26_HTTP_PORT:-58124}
CH26_VERSION=${DPONE_CHDB_VERSION:-26.5.3}
CH26_CACHE=${DPONE_CHDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpone/chdb}
CH26_DIR=$ROOT/clickhouse26
CH26_LOG=$ROOT/clickhouse26.log
CH26_PIDFILE=$ROOT/clickhouse26.pid

ch26_build_dir() {
  local repo build=${DPONE_BUILD_DIR:-build}
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  case "$build" in /*) ;; *) build=$repo/$build ;; esac  # relative: to the repository
  echo "$build"
}

ch26_adapter() {
  if [ -n "${DPONE_CHDB_ADAPTER:-}" ]; then echo "$DPONE_CHDB_ADAPTER"; return; fi
  echo "$(ch26_build_dir)/bin/dpone_chdb_adapter"
}

# libchdb.so of the pinned version in the cache, fetched on first use. The download and
# extraction go to a temporary folder and are moved in whole, so an interrupted run never
# leaves a half-written library that a later run would trust.
ch26_library() {
  local dest=$CH26_CACHE/$CH26_VERSION lib tmp tgz
  lib=$dest/libchdb.so
  if [ -s "$lib" ]; then echo "$lib"; return 0; fi
  command -v npm >/dev/null ||
    die "clickhouse26: npm not found (it comes with Debian's nodejs/npm packages) to fetch @chdb/lib-linux-x64-gnu@$CH26_VERSION"
  mkdir -p "$CH26_CACHE"
  tmp=$(mktemp -d "$CH26_CACHE/.fetch.XXXXXX")
  say "clickhouse26: fetching @chdb/lib-linux-x64-gnu@$CH26_VERSION (166 MB, once) into $dest" >&2
  if ! (cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$CH26_VERSION" >/dev/null); then
    rm -rf "$tmp"
    die "clickhouse26: npm pack @chdb/lib-linux-x64-gnu@$CH26_VERSION failed (is the npm registry reachable?)"
  fi
  tgz=$(ls "$tmp"/*.tgz)
  mkdir -p "$tmp/pkg"
  tar -xzf "$tgz" -C "$tmp/pkg" --strip-components=1 package/libchdb.so package/package.json ||
    { rm -rf "$tmp"; die "clickhouse26: $tgz holds no package/libchdb.so"; }
  rm -rf "$dest"
  mv "$tmp/pkg" "$dest"
  rm -rf "$tmp"
  echo "$lib"
}

ch26_is_our_pid() {
  local pid=$1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--path $CH26_DIR/data "
}

ch26_running_pid() {
  local pid
  [ -r "$CH26_PIDFILE" ] || return 1
  pid=$(head -n1 "$CH26_PIDFILE" 2>/dev/null || true)
  ch26_is_our_pid "$pid" || return 1
  echo "$pid"
}

ch26_running_port() { sed -n 2p "$CH26_PIDFILE" 2>/dev/null; }

ch26_write_env() {
  {
    echo "# ClickHouse 26 test service (scripts/services.sh): libchdb $CH26_VERSION of $CH26_DIR"
    echo "export DPONE_TEST_CH26_URL=http://127.0.0.1:$1"
  } > "$ROOT/clickhouse26.env"
}

ch26_ping() { curl -sf --max-time 2 "http://127.0.0.1:$1/ping" >/dev/null 2>&1; }

start_clickhouse26() {
  local pid port lib bin
  if [ "$CH26_WANTED" != 1 ] && ! ch26_running_pid >/dev/null; then
    say "clickhouse26: not started (opt-in: scripts/services.sh start clickhouse26, or DPONE_CH26=1)"
    return 0
  fi
  if pid=$(ch26_running_pid); then
    port=$(ch26_running_port)
    ch26_write_env "$port"
    say "clickhouse26: already running (pid $pid, http 127.0.0.1:$port, data $CH26_DIR)"
    return 0
  fi
  rm -f "$CH26_PIDFILE" "$ROOT/clickhouse26.env"
  lib=$(ch26_library)
  bin=$(ch26_adapter)
  if [ ! -x "$bin" ] && [ -z "${DPONE_CHDB_ADAPTER:-}" ]; then
    [ -f "$(ch26_build_dir)/CMakeCache.txt" ] ||
      die "clickhouse26: no configured build in $(ch26_build_dir) to build dpone_chdb_adapter (set DPONE_BUILD_DIR)"
    say "clickhouse26: building dpone_chdb_adapter"
    cmake --build "$(ch26_build_dir)" --target dpone_chdb_adapter >/dev/null ||
      die "clickhouse26: building dpone_chdb_adapter failed"
  fi
  [ -x "$bin" ] || die "clickhouse26: $bin not found"
  mkdir -p "$CH26_DIR/data"
  # A trailing argument after --path keeps "--path DIR " matchable in /proc/PID/cmdline.
  (cd / && exec "$bin" --path "$CH26_DIR/data" --lib "$lib" --port "$CH26_PORT" \
    >> "$CH26_LOG" 2>&1 9>&-) &
  pid=$!
  # Loading the 560 MB library and starting the engine takes a few seconds.
  for _ in $(seq 600); do
    ch26_ping "$CH26_PORT" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! ch26_ping "$CH26_PORT"; then
    tail -n 20 "$CH26_LOG" >&2
    kill -KILL "$pid" 2>/dev/null || true
    die "clickhouse26: adapter did not answer /ping on 127.0.0.1:$CH26_PORT (log above, in $CH26_LOG); port busy? set DPONE_CH26_HTTP_PORT"
  fi
  printf '%s\n%s\n' "$pid" "$CH26_PORT" > "$CH26_PIDFILE"
  ch26_write_env "$CH26_PORT"
  say "clickhouse26: started (pid $pid, http 127.0.0.1:$CH26_PORT, ClickHouse $CH26_VERSION via $lib)"
}

stop_clickhouse26() {
  local pid
  if ! pid=$(ch26_running_pid); then
    rm -f "$CH26_PIDFILE" "$ROOT/clickhouse26.env"
    say "clickhouse26: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    ch26_is_our_pid "$pid" || break
    sleep 0.1
  done
  if ch26_is_our_pid "$pid"; then
    say "clickhouse26: pid $pid did not stop within 15 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$CH26_PIDFILE" "$ROOT/clickhouse26.env"
  say "clickhouse26: stopped (pid $pid)"
}

status_clickhouse26() {
  local pid
  if pid=$(ch26_running_pid); then
    say "clickhouse26: running (pid $pid, http 127.0.0.1:$(ch26_running_port), data $CH26_DIR, log $CH26_LOG)"
    return 0
  fi
  say "clickhouse26: stopped"
  # Opt-in: not running is only a failure when it was asked for.
  [ "$CH26_WANTED" = 1 ] && return 3
  return 0
}

clean_clickhouse26() {
  stop_clickhouse26
  rm -rf "$CH26_DIR" "$CH26_LOG"
  say "clickhouse26: data removed (libchdb.so stays in $CH26_CACHE)"
}
