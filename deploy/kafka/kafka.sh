#!/usr/bin/env bash
# A real single-node Kafka broker (KRaft, broker+controller in one JVM) run from the jars
# that Maven Central serves: no Docker engine and no Kafka tarball are needed.
#
#   deploy/kafka/kafka.sh fetch|start|stop|status|wipe
#
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_STATE_DIR (<repo>/var/kafka),
#      KAFKA_JARS_DIR (~/.cache/district-ledger/kafka-<version>), KAFKA_HEAP_OPTS
#      (-Xmx512m -Xms512m), KAFKA_READY_TIMEOUT (90), PYTHON (python3, needs kafka-python),
#      JAVA_HOME (else java from PATH; Kafka 4 needs Java 17+).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
POM="$HERE/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
JARS_DIR="${KAFKA_JARS_DIR:-$HOME/.cache/district-ledger/kafka-$KAFKA_VERSION}"
STATE_DIR="${KAFKA_STATE_DIR:-$REPO/var/kafka}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
PYTHON="${PYTHON:-python3}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
PID_FILE="$STATE_DIR/kafka.pid"
PROPS="$STATE_DIR/server.properties"
OUT="$STATE_DIR/kafka.out"

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# The marker holds a hash of the pom: a changed dependency list means a fresh copy.
pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }
jars_complete() { [[ -f "$JARS_DIR/.complete" && "$(cat "$JARS_DIR/.complete")" == "$(pom_hash)" ]]; }

cmd_fetch() {
  jars_complete && return 0
  command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
  log "fetching Kafka $KAFKA_VERSION jars into $JARS_DIR"
  local tmp="$JARS_DIR.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # runtime scope = what the broker needs on its class path. mvn prints its errors (and,
  # even with -q, some colour codes) on stdout: send that to stderr.
  mvn -B -q -f "$POM" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2 \
    || { rm -rf "$tmp"; die "mvn dependency:copy-dependencies failed"; }
  pom_hash >"$tmp/.complete"
  rm -rf "$JARS_DIR"
  mv "$tmp" "$JARS_DIR"
}

# A live process (a killed one stays a zombie until reaped: kill -0 would still succeed).
alive() { [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" =~ ^[^ZX]$ ]]; }

# Pid of our broker, if running (a stale pid file may name a recycled pid).
broker_pid() {
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_ready() { # $1 = timeout seconds, $2 = pid to watch
  "$PYTHON" "$HERE/wait_ready.py" "127.0.0.1:$PORT" --timeout "$1" --pid "$2" \
    --log "$OUT" --log "$STATE_DIR/logs/server.log" "${@:3}"
}

write_props() {
  cat >"$PROPS" <<EOF
# Written by deploy/kafka/kafka.sh on each start; edit that script, not this file.
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
log.dirs=$STATE_DIR/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# After a kill -9 the controller refuses the restarted broker until the old registration's
# session expires (default 9 s); a shorter session makes crash/restart tests faster.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
EOF
}

cmd_start() {
  local pid
  # Serialise concurrent starts (e.g. parallel test workers): the loser waits, then finds
  # the broker running. The broker must not inherit fd 9, or it would hold the lock forever.
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/start.lock"
  flock 9
  if pid="$(broker_pid)"; then
    # Already running from this state dir: a no-op once it answers.
    wait_ready "${KAFKA_READY_TIMEOUT:-90}" "$pid" --quiet
    return
  fi
  cmd_fetch
  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    # Else wait_ready could get its answer from some other broker on that port.
    port_busy "$p" && die "port $p is already in use by another process"
  done
  mkdir -p "$STATE_DIR/logs" "$STATE_DIR/data"
  write_props
  local logopts=(-Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$STATE_DIR/logs")
  if [[ ! -f "$STATE_DIR/data/meta.properties" ]]; then
    # --standalone: this node is the whole controller quorum (pairs with
    # controller.quorum.bootstrap.servers; controller.quorum.voters must then be unset).
    local cluster_id
    cluster_id="$("$JAVA" -cp "$JARS_DIR/*" "${logopts[@]}" kafka.tools.StorageTool random-uuid)"
    "$JAVA" -cp "$JARS_DIR/*" "${logopts[@]}" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$PROPS" --standalone >>"$OUT" 2>&1 || { tail -n 20 "$OUT" >&2; die "format failed"; }
    # The quorum's voter record stores the controller endpoint given at format time.
    echo "$CONTROLLER_PORT" >"$STATE_DIR/formatted-controller-port"
  elif [[ "$(cat "$STATE_DIR/formatted-controller-port" 2>/dev/null)" != "$CONTROLLER_PORT" ]]; then
    die "$STATE_DIR was formatted for another controller port; run 'kafka.sh wipe' first"
  fi
  echo "=== $(date -Is) start on 127.0.0.1:$PORT" >>"$OUT"
  # JVM flags as Kafka's kafka-run-class.sh uses them, with a smaller heap.
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of flags
  nohup "$JAVA" ${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    "${logopts[@]}" -cp "$JARS_DIR/*" kafka.Kafka "$PROPS" </dev/null >>"$OUT" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  wait_ready "${KAFKA_READY_TIMEOUT:-90}" "$pid" || { cmd_stop; die "broker did not become ready"; }
}

cmd_stop() {
  local pid i
  if pid="$(broker_pid)"; then
    kill -TERM "$pid"
    # SIGTERM makes the broker shut down cleanly (flush, close logs); allow ~30 s.
    for ((i = 0; i < 300; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "broker $pid still up after 30s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PID_FILE"
}

cmd_status() {
  local pid
  pid="$(broker_pid)" || { log "not running ($STATE_DIR)"; return 1; }
  wait_ready 5 "$pid"
}

cmd_wipe() {
  cmd_stop
  rm -rf "$STATE_DIR"
}

case "${1:-}" in
  fetch | start | stop | status | wipe) "cmd_$1" ;;
  *) die "usage: $0 fetch|start|stop|status|wipe" ;;
esac
