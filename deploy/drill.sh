#!/usr/bin/env bash
# `make drill`: the fault drill (bench/drill.py) on its own fresh Kafka broker and PostgreSQL,
# since it stops and restarts the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
export KAFKA_PORT="${DRILL_KAFKA_PORT:-19292}" KAFKA_CONTROLLER_PORT="${DRILL_KAFKA_CONTROLLER_PORT:-19293}"
export KAFKA_STATE_DIR="$PWD/var/drill-kafka"
export PGPORT="${DRILL_PGPORT:-15436}" PG_STATE_DIR="$PWD/var/drill-postgres"
# shellcheck source=deploy/stack.sh
source deploy/stack.sh
start_stack
.venv/bin/python -m bench.drill "$@"
