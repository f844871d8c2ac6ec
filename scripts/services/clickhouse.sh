# shellcheck shell=bash
# ClickHouse test service (Debian's clickhouse-server 18.16), sourced by scripts/services.sh
# (which defines ROOT, say, die, is_root). Defines start_clickhouse/stop_clickhouse/
# status_clickhouse/clean_clickhouse and writes $ROOT/clickhouse.env.
# --- A server of its own: minimal config + data under $ROOT/clickhouse, never systemd -----
# The server runs as the `clickhouse` OS user through setpriv (so `$!` is the server's own
# PID, recorded in $ROOT/clickhouse.pid and signalled by stop). Replicated tables are never
# created, so the data folder survives restarts without ZooKeeper.
CH_HTTP_PORT=${DPONE_CH_HTTP_PORT:-58123}
CH_TCP_PORT=${DPONE_CH_TCP_PORT:-59000}
CH_DIR=$ROOT/clickhouse
CH_LOG=$ROOT/clickhouse.log
CH_PIDFILE=$ROOT/clickhouse.pid
CH_BIN=${DPONE_CH_BIN:-/usr/sbin/clickhouse-server}
if is_root; then CH_OS_USER=clickhouse; else CH_OS_USER=$(id -un); fi

# True when PID is a live clickhouse-server of this data folder (its config path is in argv).
ch_is_our_pid() {
  local pid=$1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--config-file=$CH_DIR/config.xml"
}

ch_running_pid() {
  local pid
  [ -r "$CH_PIDFILE" ] || return 1
  pid=$(head -n1 "$CH_PIDFILE" 2>/dev/null || true)
  ch_is_our_pid "$pid" || return 1
  echo "$pid"
}

ch_running_port() { sed -n 2p "$CH_PIDFILE" 2>/dev/null; }

ch_write_env() {
  local port=$1
  {
    echo "# ClickHouse test service (scripts/services.sh): server of $CH_DIR"
    echo "export DPONE_TEST_CH_URL=http://127.0.0.1:$port"
  } > "$ROOT/clickhouse.env"
}

ch_write_config() {
  mkdir -p "$CH_DIR/data" "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas"
  cat > "$CH_DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>true</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$CH_HTTP_PORT</http_port>
  <tcp_port>$CH_TCP_PORT</tcp_port>
  <path>$CH_DIR/data/</path>
  <tmp_path>$CH_DIR/tmp/</tmp_path>
  <user_files_path>$CH_DIR/user_files/</user_files_path>
  <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
  <users_config>$CH_DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <max_concurrent_queries>100</max_concurrent_queries>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
  cat > "$CH_DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
XML
  is_root && chown -R "$CH_OS_USER:" "$CH_DIR"
  return 0
}

ch_ping() { curl -sf --max-time 2 "http://127.0.0.1:$1/ping" >/dev/null 2>&1; }

start_clickhouse() {
  [ -x "$CH_BIN" ] || die "clickhouse: $CH_BIN not found: install clickhouse-server (scripts/install-deps.sh)"
  local pid port
  if pid=$(ch_running_pid); then
    port=$(ch_running_port)
    ch_write_env "$port"
    [ "$port" = "$CH_HTTP_PORT" ] ||
      say "clickhouse: note: running on port $port, not DPONE_CH_HTTP_PORT=$CH_HTTP_PORT (stop it to change)"
    say "clickhouse: already running (pid $pid, http 127.0.0.1:$port, data $CH_DIR)"
    return 0
  fi
  # Not running: a recorded PID is stale (killed session, kill -9). The server keeps its
  # own status file with a lock; a dead process holds no lock, so removing it is safe.
  if [ -f "$CH_PIDFILE" ]; then
    say "clickhouse: removing stale $CH_PIDFILE (pid $(head -n1 "$CH_PIDFILE") is not running)"
  fi
  rm -f "$CH_PIDFILE" "$ROOT/clickhouse.env" "$CH_DIR/data/status"
  if is_root && ! runuser -u "$CH_OS_USER" -- test -x "$ROOT"; then
    die "clickhouse: the '$CH_OS_USER' user cannot enter $ROOT: set DPONE_SERVICES_DIR to a directory under /tmp"
  fi
  ch_write_config
  touch "$CH_LOG"
  is_root && chown "$CH_OS_USER:" "$CH_LOG"
  if is_root; then
    (cd / && exec setpriv --reuid="$CH_OS_USER" --regid="$CH_OS_USER" --init-groups \
      "$CH_BIN" --config-file="$CH_DIR/config.xml" >> "$CH_LOG" 2>&1 9>&-) &
  else
    (cd / && exec "$CH_BIN" --config-file="$CH_DIR/config.xml" >> "$CH_LOG" 2>&1 9>&-) &
  fi
  pid=$!
  for _ in $(seq 150); do
    ch_ping "$CH_HTTP_PORT" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! ch_ping "$CH_HTTP_PORT"; then
    tail -n 20 "$CH_LOG" >&2
    kill -KILL "$pid" 2>/dev/null || true
    die "clickhouse: server did not answer /ping on 127.0.0.1:$CH_HTTP_PORT (log above, in $CH_LOG); port busy? set DPONE_CH_HTTP_PORT / DPONE_CH_TCP_PORT"
  fi
  printf '%s\n%s\n' "$pid" "$CH_HTTP_PORT" > "$CH_PIDFILE"
  ch_write_env "$CH_HTTP_PORT"
  say "clickhouse: started (pid $pid, http 127.0.0.1:$CH_HTTP_PORT, tcp $CH_TCP_PORT, data $CH_DIR)"
}

stop_clickhouse() {
  local pid
  if ! pid=$(ch_running_pid); then
    rm -f "$CH_PIDFILE" "$ROOT/clickhouse.env"
    say "clickhouse: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    ch_is_our_pid "$pid" || break
    sleep 0.1
  done
  if ch_is_our_pid "$pid"; then
    say "clickhouse: pid $pid did not stop within 15 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$CH_PIDFILE" "$ROOT/clickhouse.env"
  say "clickhouse: stopped (pid $pid)"
}

status_clickhouse() {
  local pid
  if pid=$(ch_running_pid); then
    say "clickhouse: running (pid $pid, http 127.0.0.1:$(ch_running_port), data $CH_DIR, log $CH_LOG)"
    return 0
  fi
  if [ -f "$CH_PIDFILE" ]; then
    say "clickhouse: stopped (stale pid file; the next start cleans it up)"
  else
    say "clickhouse: stopped"
  fi
  return 3
}

clean_clickhouse() {
  stop_clickhouse
  rm -rf "$CH_DIR" "$CH_LOG"
  say "clickhouse: data removed"
}
