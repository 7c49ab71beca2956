#!/usr/bin/env bash
# A real Kafka broker (KRaft, broker+controller in one JVM) run from the jars that Maven Central
# serves: no Docker engine and no Kafka tarball are needed. One node by default; with
# KAFKA_NODES=N (N >= 3 for a quorum that survives a lost node), a cluster of N such nodes on
# loopback ports, the controller quorum a voter on each.
#
#   deploy/kafka/kafka.sh fetch|start|stop|status|wipe|bootstrap
#   deploy/kafka/kafka.sh start|stop|kill|status ID    one node of a cluster (kill = SIGKILL)
#
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_STATE_DIR (<repo>/var/kafka),
#      KAFKA_JARS_DIR (~/.cache/district-ledger/kafka-<version>), KAFKA_HEAP_OPTS
#      (-Xmx512m -Xms512m), KAFKA_READY_TIMEOUT (90), PYTHON (python3, needs kafka-python),
#      JAVA_HOME (else java from PATH; Kafka 4 needs Java 17+).
# Cluster: KAFKA_NODES (1). Node i (1..N) listens on KAFKA_PORT+i-1 and its controller on
#      KAFKA_CONTROLLER_PORT+i-1 (default KAFKA_PORT+100), keeps its state in
#      KAFKA_STATE_DIR/node-i, and the cluster's defaults are replication 3 (at most N) and
#      min.insync.replicas 2 (KAFKA_REPLICATION_FACTOR, KAFKA_MIN_INSYNC_REPLICAS). Point the
#      ledger at it with what `kafka.sh bootstrap` prints, and EVENTS_TOPIC_REPLICATION_FACTOR=3,
#      EVENTS_TOPIC_MIN_INSYNC_REPLICAS=2.
#
# Heap: 512 MiB per node (-Xms = -Xmx, so the heap never resizes mid-test), for one node or
# three. A broker's heap holds metadata, request buffers and index caches, which at this
# project's scale (two topics of a few partitions) stay well under it; the log itself is read
# and written through the OS page cache, not the heap. Measured on the 3-node cluster here
# after 300,000 records of 500 B were written (acks=all, 3 copies) and read back: 180-200 MiB
# of heap in use and an RSS of ~0.4 GiB per node; with the whole heap touched a node should
# stay under ~0.7 GiB (heap, ~45 MiB metaspace, threads and buffers). Three nodes then take at
# most ~2 GiB of a 24 GiB machine, leaving the rest to the page cache (which is what makes
# Kafka fast), PostgreSQL and the services. The 2 cores are the scarce part: fewer broker
# threads (num.io.threads, num.network.threads) and one G1 worker thread per node keep three
# JVMs from crowding out the services under test.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
POM="$HERE/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
JARS_DIR="${KAFKA_JARS_DIR:-$HOME/.cache/district-ledger/kafka-$KAFKA_VERSION}"
STATE_DIR="${KAFKA_STATE_DIR:-$REPO/var/kafka}"
NODES="${KAFKA_NODES:-1}"
[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || { echo "kafka.sh: KAFKA_NODES must be a number >= 1" >&2; exit 1; }
PORT="${KAFKA_PORT:-9092}"
if ((NODES == 1)); then
  CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
  REPLICATION="${KAFKA_REPLICATION_FACTOR:-1}"
  MIN_ISR="${KAFKA_MIN_INSYNC_REPLICAS:-1}"
else # node i's ports are base+i-1: keep the controllers' range clear of the brokers'
  CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 100))}"
  REPLICATION="${KAFKA_REPLICATION_FACTOR:-$((NODES < 3 ? NODES : 3))}"
  MIN_ISR="${KAFKA_MIN_INSYNC_REPLICAS:-$((REPLICATION < 2 ? 1 : 2))}"
fi
PYTHON="${PYTHON:-python3}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
LOCK="$STATE_DIR/start.lock"
declare -A LAUNCHED=() # node id -> pid, of the nodes this run started

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Where node $1 keeps its state: the state dir itself for a single node (as it always was).
node_dir() { if ((NODES == 1)); then echo "$STATE_DIR"; else echo "$STATE_DIR/node-$1"; fi; }
node_port() { echo $((PORT + $1 - 1)); }
node_controller_port() { echo $((CONTROLLER_PORT + $1 - 1)); }
all_nodes() { seq 1 "$NODES"; }

cmd_bootstrap() {
  local id sep=""
  for id in $(all_nodes); do
    printf '%s127.0.0.1:%s' "$sep" "$(node_port "$id")"
    sep=,
  done
  echo
}

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

# Pid of node $1's broker, if running (a stale pid file may name a recycled pid).
broker_pid() {
  local pid dir
  dir="$(node_dir "$1")"
  pid="$(cat "$dir/kafka.pid" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $dir/server.properties" || return 1
  echo "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# After SIGKILL the JVM's main thread is a zombie at once, while its other threads still hold
# the sockets for a moment: a start right after would find the ports busy.
wait_ports_free() { # $1 = node
  local i
  for ((i = 0; i < 100; i++)); do
    port_busy "$(node_port "$1")" || port_busy "$(node_controller_port "$1")" || return 0
    sleep 0.1
  done
}

wait_ready() { # $1 = node, $2 = timeout seconds, $3 = pid to watch, then wait_ready.py options
  local dir
  dir="$(node_dir "$1")"
  "$PYTHON" "$HERE/wait_ready.py" "127.0.0.1:$(node_port "$1")" --timeout "$2" --pid "$3" \
    --log "$dir/kafka.out" --log "$dir/logs/server.log" "${@:4}"
}

write_props() { # $1 = node
  local id="$1" dir port cport
  dir="$(node_dir "$id")"
  port="$(node_port "$id")"
  cport="$(node_controller_port "$id")"
  if ((NODES == 1)); then
    cat >"$dir/server.properties" <<EOF
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
    return
  fi
  local voters="" i
  for i in $(all_nodes); do
    voters+="${voters:+,}$i@127.0.0.1:$(node_controller_port "$i")"
  done
  cat >"$dir/server.properties" <<EOF
# Written by deploy/kafka/kafka.sh on each start; edit that script, not this file.
# Node $id of a $NODES-node cluster: broker and controller in one JVM, the quorum a voter on
# every node (static voters: every node is formatted with the same cluster id).
process.roles=broker,controller
node.id=$id
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
controller.quorum.voters=$voters
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
# Every copy the cluster keeps, its own topics' included, on $REPLICATION nodes, and a write
# acknowledged (acks=all) only once $MIN_ISR of them hold it: one lost node loses nothing.
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_ISR
offsets.topic.replication.factor=$REPLICATION
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_ISR
share.coordinator.state.topic.replication.factor=$REPLICATION
share.coordinator.state.topic.min.isr=$MIN_ISR
# Never make a replica that is not in sync the leader: it would drop acknowledged writes.
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
# A killed node is fenced (and taken out of every ISR, so acks=all goes on with the others)
# after broker.session.timeout.ms, and its restart is refused until then: 3 s, not 9.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
# Two cores for three JVMs and the services: fewer threads than the defaults (3 and 8).
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
EOF
}

jvm_opts() { # $1 = node dir
  # JVM flags as Kafka's kafka-run-class.sh uses them, with a smaller heap (see the top). On a
  # cluster, one G1 worker thread per JVM: three JVMs share 2 cores.
  local gc=()
  ((NODES > 1)) && gc=(-XX:ParallelGCThreads=1 -XX:ConcGCThreads=1)
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of flags
  printf '%s\n' ${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent "${gc[@]}" \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
    -Dkafka.logs.dir="$1/logs"
}

# The ports (and node count) a state dir was formatted for: the quorum stores its voters'
# endpoints at format time.
layout() {
  if ((NODES == 1)); then echo "$CONTROLLER_PORT"; else echo "$NODES $PORT $CONTROLLER_PORT"; fi
}

format_nodes() { # format the nodes of a fresh state dir, every one with the same cluster id
  local id dir cluster_id logopts=(-Dlog4j2.configurationFile="$HERE/log4j2.properties")
  if ((NODES == 1)); then
    if [[ ! -f "$STATE_DIR/data/meta.properties" ]]; then
      # --standalone: this node is the whole controller quorum (pairs with
      # controller.quorum.bootstrap.servers; controller.quorum.voters must then be unset).
      cluster_id="$("$JAVA" -cp "$JARS_DIR/*" "${logopts[@]}" -Dkafka.logs.dir="$STATE_DIR/logs" kafka.tools.StorageTool random-uuid)"
      "$JAVA" -cp "$JARS_DIR/*" "${logopts[@]}" -Dkafka.logs.dir="$STATE_DIR/logs" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$STATE_DIR/server.properties" \
        --standalone >>"$STATE_DIR/kafka.out" 2>&1 \
        || { tail -n 20 "$STATE_DIR/kafka.out" >&2; die "format failed"; }
      # The quorum's voter record stores the controller endpoint given at format time.
      echo "$CONTROLLER_PORT" >"$STATE_DIR/formatted-controller-port"
    elif [[ "$(cat "$STATE_DIR/formatted-controller-port" 2>/dev/null)" != "$CONTROLLER_PORT" ]]; then
      die "$STATE_DIR was formatted for another controller port; run 'kafka.sh wipe' first"
    fi
    return
  fi
  # A cluster names its voters statically (controller.quorum.voters, which --standalone must
  # not be combined with): each node is formatted with the cluster id alone.
  local layout="$NODES $PORT $CONTROLLER_PORT" marker="$STATE_DIR/formatted-layout" formatted=0
  for id in $(all_nodes); do
    [[ -f "$(node_dir "$id")/data/meta.properties" ]] && formatted=$((formatted + 1))
  done
  if ((formatted == NODES)); then
    [[ "$(cat "$marker" 2>/dev/null)" == "$layout" ]] \
      || die "$STATE_DIR was formatted for other ports or another node count; run 'kafka.sh wipe' first"
    return
  fi
  ((formatted == 0)) || die "only $formatted of $NODES nodes in $STATE_DIR have data; run 'kafka.sh wipe' first"
  cluster_id="$("$JAVA" -cp "$JARS_DIR/*" "${logopts[@]}" -Dkafka.logs.dir="$STATE_DIR/logs" kafka.tools.StorageTool random-uuid)"
  for id in $(all_nodes); do
    dir="$(node_dir "$id")"
    "$JAVA" -cp "$JARS_DIR/*" "${logopts[@]}" -Dkafka.logs.dir="$dir/logs" kafka.tools.StorageTool \
      format -t "$cluster_id" -c "$dir/server.properties" >>"$dir/kafka.out" 2>&1 \
      || { tail -n 20 "$dir/kafka.out" >&2; die "format of node $id failed"; }
  done
  echo "$layout" >"$marker"
}

launch() { # start node $1 in the background
  local id="$1" dir pid
  dir="$(node_dir "$id")"
  echo "=== $(date -Is) start on 127.0.0.1:$(node_port "$id")" >>"$dir/kafka.out"
  local opts
  mapfile -t opts < <(jvm_opts "$dir")
  nohup "$JAVA" "${opts[@]}" -cp "$JARS_DIR/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/kafka.out" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$dir/kafka.pid"
  LAUNCHED[$id]=$pid # (its /proc cmdline names kafka.Kafka only once nohup has exec'd java)
}

lock() {
  # Serialise concurrent starts and stops (e.g. parallel test workers): the loser waits, then
  # finds the broker running. A broker must not inherit fd 9, or it would hold the lock forever.
  mkdir -p "$STATE_DIR"
  exec 9>"$LOCK"
  flock 9
}

check_node() { # $1 = node id
  [[ "$1" =~ ^[1-9][0-9]*$ ]] && (($1 <= NODES)) || die "no node $1: nodes are 1..$NODES (KAFKA_NODES)"
}

cmd_start() { # [node id]: all nodes, or that one
  local id pid p ids down=() started=()
  lock
  if [[ -n "${1:-}" ]]; then check_node "$1"; ids=("$1"); else mapfile -t ids < <(all_nodes); fi
  for id in "${ids[@]}"; do
    broker_pid "$id" >/dev/null || down+=("$id")
  done
  if ((${#down[@]} > 0)); then
    cmd_fetch
    for id in "${down[@]}"; do
      for p in "$(node_port "$id")" "$(node_controller_port "$id")"; do
        # Else wait_ready could get its answer from some other broker on that port.
        port_busy "$p" && die "port $p is already in use by another process"
      done
    done
    for id in $(all_nodes); do
      mkdir -p "$(node_dir "$id")/logs" "$(node_dir "$id")/data"
      write_props "$id"
    done
    format_nodes
    # A cluster's controllers need a quorum before any of them answers: start every node
    # before waiting for any.
    for id in "${down[@]}"; do
      launch "$id"
      started+=("$id")
    done
  fi
  # Ready = the node answers a metadata request (on a cluster: and the cluster lists it as an
  # unfenced broker; after a whole cluster's start, every node). Nodes that were running
  # already are a no-op once they answer.
  local opts
  for id in "${ids[@]}"; do
    pid="${LAUNCHED[$id]:-$(broker_pid "$id")}"
    opts=()
    [[ " ${started[*]} " == *" $id "* ]] || opts=(--quiet)
    if ((NODES > 1)); then
      opts+=(--node-id "$id")
      [[ -z "${1:-}" ]] && opts+=(--brokers "$NODES")
    fi
    wait_ready "$id" "${KAFKA_READY_TIMEOUT:-90}" "$pid" "${opts[@]}" || {
      if ((NODES == 1)); then cmd_stop; else stop_nodes "${started[@]}"; fi
      die "$( ((NODES == 1)) && echo "broker" || echo "node $id") did not become ready"
    }
  done
  if ((NODES > 1 && ${#started[@]} > 0)) && [[ -z "${1:-}" ]]; then
    log "cluster of $NODES nodes ready: KAFKA_BOOTSTRAP_SERVERS=$(cmd_bootstrap)" \
      "EVENTS_TOPIC_REPLICATION_FACTOR=$REPLICATION EVENTS_TOPIC_MIN_INSYNC_REPLICAS=$MIN_ISR"
  fi
}

stop_nodes() { # SIGTERM each node named, then wait for all of them
  local id pid i pids=()
  for id in "$@"; do
    if pid="$(broker_pid "$id")"; then
      kill -TERM "$pid"
      pids+=("$id:$pid")
    fi
  done
  # SIGTERM makes a broker shut down cleanly (hand its partitions over, flush, close logs);
  # allow ~30 s.
  for id in "${pids[@]}"; do
    pid="${id#*:}"
    for ((i = 0; i < 300; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "node ${id%%:*} ($pid) still up after 30s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for id in "${pids[@]}"; do wait_ports_free "${id%%:*}"; done
  for id in "$@"; do rm -f "$(node_dir "$id")/kafka.pid"; done
}

cmd_stop() { # [node id]: all nodes, or that one
  if [[ -n "${1:-}" ]]; then
    check_node "$1"
    stop_nodes "$1"
  else
    # A cluster's last nodes cannot finish a controlled shutdown once the quorum is gone: stop
    # them together, so each waits at most the same ~30 s.
    # shellcheck disable=SC2046 # a list of numbers
    stop_nodes $(all_nodes)
  fi
}

cmd_kill() { # node id (optional for a single node): SIGKILL, as a crash would
  local id="${1:-}" pid i
  if [[ -z "$id" ]]; then ((NODES == 1)) || die "usage: $0 kill ID"; id=1; fi
  check_node "$id"
  pid="$(broker_pid "$id")" || { log "node $id is not running"; return 0; }
  kill -KILL "$pid"
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  wait_ports_free "$id"
  rm -f "$(node_dir "$id")/kafka.pid"
}

cmd_status() { # [node id]
  local id pid status=0 ids
  if [[ -n "${1:-}" ]]; then check_node "$1"; ids=("$1"); else mapfile -t ids < <(all_nodes); fi
  for id in "${ids[@]}"; do
    if ! pid="$(broker_pid "$id")"; then
      if ((NODES == 1)); then log "not running ($STATE_DIR)"; else log "node $id not running ($(node_dir "$id"))"; fi
      status=1
      continue
    fi
    local opts=()
    ((NODES > 1)) && opts=(--node-id "$id")
    wait_ready "$id" 5 "$pid" "${opts[@]}" || status=1
  done
  return $status
}

cmd_wipe() {
  cmd_stop
  rm -rf "$STATE_DIR"
}

case "${1:-}" in
  fetch | wipe | bootstrap) (($# == 1)) || die "usage: $0 $1"; "cmd_$1" ;;
  start | stop | kill | status) "cmd_$1" "${2:-}" ;;
  *) die "usage: $0 fetch|start|stop|status|wipe|bootstrap, or start|stop|kill|status ID" ;;
esac
