# shellcheck shell=bash
# PostgreSQL 15 test service, sourced by scripts/services.sh (which defines ROOT, say, die,
# is_root). Defines start_postgres/stop_postgres/status_postgres/clean_postgres and writes
# $ROOT/postgres.env, the fragment of env.sh the tests read.
# --- PostgreSQL 15: a throwaway cluster of its own, never the Debian package's cluster ----
# initdb and postgres refuse to run as root, so as root they run as the `postgres` OS user
# (runuser); as another user they run as that user. The postmaster's own PID (first line of
# DATA/postmaster.pid) is recorded in $ROOT/postgres.pid and is what `stop` signals.
PG_BIN=${DPONE_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_PORT=${DPONE_PG_PORT:-54329}
PG_DATA=$ROOT/postgres
PG_SOCK=$ROOT/postgres-socket
PG_LOG=$ROOT/postgres.log
PG_PIDFILE=$ROOT/postgres.pid
if is_root; then PG_OS_USER=postgres; else PG_OS_USER=$(id -un); fi
# Every role is trusted on this throwaway cluster except PG_AUTH_USER, which must log in
# with its password (scram-sha-256): tests of wrong-password handling need a server that
# actually checks one. The password is a fixed test value, not a secret.
PG_AUTH_USER=dpone_auth
PG_AUTH_PASSWORD=dpone-auth-test-pw

# Runs a command as the cluster's OS user, from / (root's cwd may be unreadable for it).
# fd 9 (the services lock) is closed: a postmaster inheriting it would hold the lock forever.
as_pg() {
  if is_root; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@") 9>&-
  else
    (cd / && "$@") 9>&-
  fi
}

# PIDs of live processes of this cluster: every postgres process (postmaster and its
# children, also children orphaned by a killed postmaster) runs with the data directory
# as its working directory. Zombies have no cwd and are not listed.
pg_cluster_pids() {
  local link pid comm pattern
  pattern=$(printf '%s' "$PG_DATA" | sed 's/[][*?\\]/\\&/g')   # find -lname takes a glob
  find /proc -mindepth 2 -maxdepth 2 -name cwd -lname "$pattern" 2>/dev/null |
    while read -r link; do
      pid=${link#/proc/}; pid=${pid%/cwd}
      read -r comm 2>/dev/null < "/proc/$pid/comm" || continue
      [ "$comm" = postgres ] && echo "$pid"
    done
  return 0
}

# True when PID is a live process of this cluster (not a zombie, not a reused PID).
pg_is_cluster_pid() {
  local pid=$1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$PG_DATA" ] &&
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]
}

# Prints the running postmaster's PID (recorded file first, then the cluster's own lock
# file); fails when the cluster is not running.
pg_running_pid() {
  local pid f
  for f in "$PG_PIDFILE" "$PG_DATA/postmaster.pid"; do
    [ -r "$f" ] || continue
    pid=$(head -n1 "$f" 2>/dev/null || true)
    if pg_is_cluster_pid "$pid"; then echo "$pid"; return 0; fi
  done
  return 1
}

# The port the running cluster listens on (line 4 of postmaster.pid).
pg_running_port() { sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null; }

pg_write_env() {
  local port=$1
  {
    echo "# PostgreSQL test service (scripts/services.sh): throwaway cluster $PG_DATA"
    echo "export DPONE_TEST_PG_DSN=\"host=127.0.0.1 port=$port user=postgres dbname=postgres\""
    echo "export DPONE_TEST_PG_PORT=$port"
    echo "export DPONE_TEST_PG_SERVICES_DIR=$ROOT   # tests that restart the server (scripts/services.sh start postgres)"
    echo "export DPONE_TEST_PG_AUTH_USER=$PG_AUTH_USER"
    echo "export DPONE_TEST_PG_AUTH_PASSWORD=$PG_AUTH_PASSWORD"
  } > "$ROOT/postgres.env"
}

# Leftover processes of a cluster whose postmaster died (kill -9, killed session) still
# hold its shared memory; wait for them to notice and exit, then kill what remains, so
# that the new postmaster never shares the data directory with an old backend.
pg_reap_orphans() {
  local pids
  pids=$(pg_cluster_pids | tr '\n' ' ')
  [ -z "$pids" ] && return 0
  say "postgres: waiting for leftover processes of a dead postmaster: $pids"
  for _ in $(seq 50); do
    sleep 0.2
    pids=$(pg_cluster_pids | tr '\n' ' ')
    [ -z "$pids" ] && return 0
  done
  say "postgres: killing leftover processes $pids"
  # shellcheck disable=SC2086  # one argument per PID
  kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 50); do
    [ -z "$(pg_cluster_pids)" ] && return 0
    sleep 0.1
  done
  die "postgres: processes $(pg_cluster_pids | tr '\n' ' ')of $PG_DATA do not exit"
}

pg_initdb() {
  if [ -f "$PG_DATA/PG_VERSION" ] && [ "$(cat "$PG_DATA/PG_VERSION")" = 15 ]; then
    return 0
  fi
  if [ -e "$PG_DATA" ]; then
    # Half-initialised (initdb killed) or another major version: the cluster is throwaway.
    say "postgres: $PG_DATA is not a PostgreSQL 15 cluster; re-creating it"
    rm -rf "$PG_DATA"
  fi
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  is_root && chown "$PG_OS_USER:" "$PG_DATA"
  if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 \
       --locale=C.UTF-8 > "$ROOT/postgres-initdb.log" 2>&1; then
    cat "$ROOT/postgres-initdb.log" >&2
    die "postgres: initdb failed (log above, also in $ROOT/postgres-initdb.log)"
  fi
  say "postgres: initialised $PG_DATA"
}

# First-match wins in pg_hba.conf: the password line goes before initdb's trust lines.
pg_require_password_for_auth_user() {
  local hba=$PG_DATA/pg_hba.conf line="host all $PG_AUTH_USER 127.0.0.1/32 scram-sha-256"
  grep -qF "$line" "$hba" && return 0
  { echo "$line"; cat "$hba"; } > "$hba.new"
  mv "$hba.new" "$hba"
  is_root && chown "$PG_OS_USER:" "$hba"
  chmod 600 "$hba"
}

start_postgres() {
  [ -x "$PG_BIN/pg_ctl" ] ||
    die "postgres: $PG_BIN/pg_ctl not found: install postgresql-15 (scripts/install-deps.sh)"
  local pid port
  if pid=$(pg_running_pid); then
    port=$(pg_running_port)
    echo "$pid" > "$PG_PIDFILE"
    pg_write_env "$port"
    [ "$port" = "$PG_PORT" ] ||
      say "postgres: note: running on port $port, not DPONE_PG_PORT=$PG_PORT (stop it to change)"
    say "postgres: already running (pid $pid, 127.0.0.1:$port, data $PG_DATA)"
    return 0
  fi

  # Not running: whatever PID files exist are stale (a killed session, a kill -9).
  if [ -f "$PG_DATA/postmaster.pid" ]; then
    say "postgres: removing stale $PG_DATA/postmaster.pid (pid $(head -n1 "$PG_DATA/postmaster.pid") is not a running postmaster of this cluster)"
    pg_reap_orphans
    rm -f "$PG_DATA/postmaster.pid"
  fi
  # The socket lock file names the dead postmaster too; postgres itself would refuse it
  # when that PID lingers as a zombie (PID 1 of a container does not always reap).
  rm -f "$PG_PIDFILE" "$ROOT/postgres.env" "$PG_SOCK"/.s.PGSQL.*

  if is_root && ! runuser -u "$PG_OS_USER" -- test -x "$ROOT"; then
    die "postgres: the '$PG_OS_USER' user cannot enter $ROOT: set DPONE_SERVICES_DIR to a directory under /tmp"
  fi
  pg_initdb
  pg_require_password_for_auth_user
  mkdir -p "$PG_SOCK"
  touch "$PG_LOG"
  is_root && chown "$PG_OS_USER:" "$PG_SOCK" "$PG_LOG"

  local opts="-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1 -c max_connections=100"
  if [ "${DPONE_PG_DURABLE:-0}" != 1 ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  local log_start
  log_start=$(wc -l < "$PG_LOG")
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 -o "$opts" start >/dev/null; then
    tail -n +"$((log_start + 1))" "$PG_LOG" | tail -n 20 >&2
    die "postgres: pg_ctl start failed (server log above, in $PG_LOG); port $PG_PORT busy? set DPONE_PG_PORT"
  fi
  pid=$(head -n1 "$PG_DATA/postmaster.pid")
  pg_is_cluster_pid "$pid" || die "postgres: started, but postmaster pid '$pid' is not running (see $PG_LOG)"
  echo "$pid" > "$PG_PIDFILE"
  if ! "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 10; then
    die "postgres: postmaster $pid runs but 127.0.0.1:$PG_PORT does not accept connections (see $PG_LOG)"
  fi
  as_pg "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -c \
    "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_AUTH_USER') THEN
       CREATE ROLE $PG_AUTH_USER LOGIN PASSWORD '$PG_AUTH_PASSWORD'; END IF; END \$\$;
     GRANT CREATE ON SCHEMA public TO $PG_AUTH_USER;" >/dev/null ||
    die "postgres: cannot create the test role $PG_AUTH_USER (see $PG_LOG)"
  pg_write_env "$PG_PORT"
  local mode="fsync off"
  [ "${DPONE_PG_DURABLE:-0}" = 1 ] && mode=durable
  say "postgres: started (pid $pid, 127.0.0.1:$PG_PORT, data $PG_DATA, $mode)"
}

stop_postgres() {
  local pid
  if ! pid=$(pg_running_pid); then
    rm -f "$PG_PIDFILE" "$ROOT/postgres.env"
    say "postgres: not running"
    return 0
  fi
  kill -INT "$pid" 2>/dev/null || true   # fast shutdown: roll back open transactions, checkpoint, exit
  for _ in $(seq 150); do
    pg_is_cluster_pid "$pid" || break
    sleep 0.1
  done
  if pg_is_cluster_pid "$pid"; then
    say "postgres: pid $pid did not stop within 15 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    pg_reap_orphans
  fi
  rm -f "$PG_PIDFILE" "$ROOT/postgres.env"
  say "postgres: stopped (pid $pid)"
}

status_postgres() {
  local pid
  if pid=$(pg_running_pid); then
    say "postgres: running (pid $pid, 127.0.0.1:$(pg_running_port), data $PG_DATA, log $PG_LOG)"
    return 0
  fi
  if [ -f "$PG_PIDFILE" ] || [ -f "$PG_DATA/postmaster.pid" ]; then
    say "postgres: stopped (stale pid file; the next start cleans it up)"
  else
    say "postgres: stopped"
  fi
  return 3
}

clean_postgres() {
  stop_postgres
  rm -rf "$PG_DATA" "$PG_SOCK" "$PG_LOG" "$ROOT/postgres-initdb.log"
  say "postgres: data removed"
}
