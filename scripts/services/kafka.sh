# shellcheck shell=bash
# Kafka test service, sourced by scripts/services.sh (which defines ROOT, say, die, is_root).
# No Kafka broker is packaged for Debian: the service is dpone_kafka_mock, a small program on
# librdkafka's mock cluster (src/connectors/kafka/mock/), a real Kafka wire-protocol server
# with N brokers on 127.0.0.1 (ephemeral ports). It keeps only the newest ~5 MiB per
# partition and forgets everything when stopped. Writes $ROOT/kafka.env:
#   DPONE_TEST_KAFKA_BOOTSTRAP  bootstrap list, e.g. 127.0.0.1:40123,127.0.0.1:40125
#   DPONE_TEST_KAFKA_CONTROL    control FIFO (see dpone_kafka_mock.cpp): "topic NAME N",
#                               "errors APIKEY CODE...", acknowledged in $DPONE_TEST_KAFKA_CONTROL.ack
# Environment: DPONE_BUILD_DIR (default <repo>/build) holds bin/dpone_kafka_mock;
# DPONE_KAFKA_MOCK overrides the binary; DPONE_KAFKA_BROKERS (default 3).
KAFKA_PIDFILE=$ROOT/kafka.pid
KAFKA_LOG=$ROOT/kafka.log
KAFKA_BOOTSTRAP_FILE=$ROOT/kafka.bootstrap
KAFKA_CONTROL=$ROOT/kafka.control
KAFKA_BROKERS=${DPONE_KAFKA_BROKERS:-3}

kafka_binary() {
  if [ -n "${DPONE_KAFKA_MOCK:-}" ]; then echo "$DPONE_KAFKA_MOCK"; return; fi
  local repo
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  local build=${DPONE_BUILD_DIR:-build}
  case "$build" in /*) ;; *) build=$repo/$build ;; esac  # relative: to the repository
  echo "$build/bin/dpone_kafka_mock"
}

# True when PID is our running mock (not a reused PID).
kafka_is_mock_pid() {
  local pid=$1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dpone_kafka_moc ] ||
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dpone_kafka_mock ]
}

kafka_running_pid() {
  local pid
  [ -r "$KAFKA_PIDFILE" ] || return 1
  pid=$(cat "$KAFKA_PIDFILE" 2>/dev/null)
  kafka_is_mock_pid "$pid" && echo "$pid"
}

kafka_write_env() {
  {
    echo "# Kafka test service (scripts/services.sh): dpone_kafka_mock, $KAFKA_BROKERS brokers"
    echo "export DPONE_TEST_KAFKA_BOOTSTRAP=\"$(cat "$KAFKA_BOOTSTRAP_FILE")\""
    echo "export DPONE_TEST_KAFKA_CONTROL=\"$KAFKA_CONTROL\""
  } > "$ROOT/kafka.env"
}

start_kafka() {
  local pid bin
  if pid=$(kafka_running_pid); then
    kafka_write_env
    say "kafka: already running (pid $pid, $(cat "$KAFKA_BOOTSTRAP_FILE"))"
    return 0
  fi
  rm -f "$KAFKA_PIDFILE" "$ROOT/kafka.env" "$KAFKA_BOOTSTRAP_FILE" "$KAFKA_CONTROL" "$KAFKA_CONTROL.ack"
  bin=$(kafka_binary)
  [ -x "$bin" ] || die "kafka: $bin not found: build the target dpone_kafka_mock (set DPONE_BUILD_DIR to the build directory, or DPONE_KAFKA_MOCK to the binary)"
  # setsid: the mock must not die with the shell that started it; fd 9 (the lock) closed.
  setsid "$bin" --brokers "$KAFKA_BROKERS" --bootstrap-file "$KAFKA_BOOTSTRAP_FILE" \
    --control "$KAFKA_CONTROL" > "$KAFKA_LOG" 2>&1 < /dev/null 9>&- &
  pid=$!
  echo "$pid" > "$KAFKA_PIDFILE"
  for _ in $(seq 100); do
    [ -s "$KAFKA_BOOTSTRAP_FILE" ] && break
    kafka_is_mock_pid "$pid" || break
    sleep 0.05
  done
  if ! kafka_is_mock_pid "$pid" || [ ! -s "$KAFKA_BOOTSTRAP_FILE" ]; then
    tail -n 20 "$KAFKA_LOG" >&2 || true
    rm -f "$KAFKA_PIDFILE"
    die "kafka: dpone_kafka_mock did not start (log above, in $KAFKA_LOG)"
  fi
  kafka_write_env
  say "kafka: started (pid $pid, $KAFKA_BROKERS mock brokers at $(cat "$KAFKA_BOOTSTRAP_FILE"))"
}

stop_kafka() {
  local pid
  if ! pid=$(kafka_running_pid); then
    rm -f "$KAFKA_PIDFILE" "$ROOT/kafka.env"
    say "kafka: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kafka_is_mock_pid "$pid" || break
    sleep 0.1
  done
  if kafka_is_mock_pid "$pid"; then
    say "kafka: pid $pid did not stop within 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$KAFKA_PIDFILE" "$ROOT/kafka.env" "$KAFKA_BOOTSTRAP_FILE"
  say "kafka: stopped (pid $pid)"
}

status_kafka() {
  local pid
  if pid=$(kafka_running_pid); then
    say "kafka: running (pid $pid, $(cat "$KAFKA_BOOTSTRAP_FILE"), log $KAFKA_LOG)"
    return 0
  fi
  say "kafka: stopped"
  return 3
}

clean_kafka() {
  stop_kafka
  rm -f "$KAFKA_LOG" "$KAFKA_CONTROL" "$KAFKA_CONTROL.ack"
  say "kafka: data removed (the mock keeps none across restarts)"
}
