#!/usr/bin/env bash
# `make drill`: the fault drill (bench/drill.py) on its own fresh Kafka broker and PostgreSQL,
# since it stops and restarts the broker. `make drill CLUSTER=3`: on a fresh three-node cluster
# of its own (deploy/kafka/kafka.sh, KAFKA_NODES=3), whose partition leaders it SIGKILLs in turn.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER="${CLUSTER:-1}"
if ! [[ "$CLUSTER" =~ ^[0-9]+$ ]] || ((CLUSTER == 0 || CLUSTER == 2)); then
  echo "drill.sh: CLUSTER is a number of Kafka nodes: 1, or 3 or more (got '$CLUSTER')" >&2
  exit 2
fi
# DRILL_VAR_DIR: where the drill keeps its broker's and database's state (<repo>/var).
VAR="${DRILL_VAR_DIR:-$PWD/var}"
export KAFKA_NODES="$CLUSTER"
if ((CLUSTER == 1)); then
  export KAFKA_PORT="${DRILL_KAFKA_PORT:-19292}" KAFKA_CONTROLLER_PORT="${DRILL_KAFKA_CONTROLLER_PORT:-19293}"
  export KAFKA_STATE_DIR="$VAR/drill-kafka"
else # node i on KAFKA_PORT+i-1, its controller on KAFKA_CONTROLLER_PORT+i-1
  export KAFKA_PORT="${DRILL_KAFKA_PORT:-19392}"
  export KAFKA_CONTROLLER_PORT="${DRILL_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 100))}"
  export KAFKA_STATE_DIR="$VAR/drill-cluster-kafka"
fi
export PGPORT="${DRILL_PGPORT:-15436}" PG_STATE_DIR="$VAR/drill-postgres"
# shellcheck source=deploy/stack.sh
source deploy/stack.sh
start_stack
.venv/bin/python -m bench.drill --nodes "$CLUSTER" "$@"
