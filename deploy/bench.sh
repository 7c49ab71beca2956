#!/usr/bin/env bash
# `make bench`: a fresh local Kafka broker and PostgreSQL on bench ports, then every benchmark,
# written to bench/results/latest.json and bench/results/latest.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export KAFKA_PORT="${BENCH_KAFKA_PORT:-39092}" KAFKA_CONTROLLER_PORT="${BENCH_KAFKA_CONTROLLER_PORT:-39093}"
export KAFKA_STATE_DIR="$PWD/var/bench-kafka" KAFKA_HEAP_OPTS="-Xmx1g -Xms1g"
export PGPORT="${BENCH_PGPORT:-55435}" PG_STATE_DIR="$PWD/var/bench-postgres"
# shellcheck source=deploy/stack.sh
source deploy/stack.sh

# Load generators in C and Go, so the client is not what a figure measures.
command -v wrk >/dev/null && command -v hey >/dev/null ||
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk hey >/dev/null; }
start_stack
.venv/bin/python -m bench.run "$@"
