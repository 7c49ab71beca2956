#!/usr/bin/env bash
# `make bench`: a fresh local Kafka broker and PostgreSQL on bench ports, then every benchmark,
# written to bench/results/latest.json and bench/results/latest.md. A figure that could not be
# measured is written there as failed, with its reason, and the exit status is then 1.
# Ports and state directories: BENCH_KAFKA_PORT, BENCH_KAFKA_CONTROLLER_PORT, BENCH_PGPORT,
# BENCH_KAFKA_STATE_DIR, BENCH_PG_STATE_DIR (beside a test run or another bench).
set -euo pipefail
cd "$(dirname "$0")/.."
export KAFKA_PORT="${BENCH_KAFKA_PORT:-19192}" KAFKA_CONTROLLER_PORT="${BENCH_KAFKA_CONTROLLER_PORT:-19193}"
export KAFKA_STATE_DIR="${BENCH_KAFKA_STATE_DIR:-$PWD/var/bench-kafka}" KAFKA_HEAP_OPTS="-Xmx1g -Xms1g"
export PGPORT="${BENCH_PGPORT:-15435}" PG_STATE_DIR="${BENCH_PG_STATE_DIR:-$PWD/var/bench-postgres}"
# shellcheck source=deploy/stack.sh
source deploy/stack.sh

# Load generators in C and Go, so the client is not what a figure measures: wrk (closed loop,
# for rates) from Debian; vegeta (a constant arrival rate, for latencies at a steady load) built
# from its Go module. hey was used before: its workers tick together, so "1,000/s" arrived as
# bursts of 50 every 50 ms and the p50 of a trivial route read 8 ms (vegeta: 0.5 ms).
command -v wrk >/dev/null ||
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
VEGETA_VERSION=v12.13.0
export VEGETA="$PWD/var/tools/vegeta-$VEGETA_VERSION"
if [ ! -x "$VEGETA" ]; then
  GO="$(command -v go || echo /usr/local/go/bin/go)"
  GOBIN="$PWD/var/tools/gobin" "$GO" install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
  mv "$PWD/var/tools/gobin/vegeta" "$VEGETA"
fi
# Each run leaves its databases behind (gigabytes): start from an empty server, as from an empty log.
deploy/postgres/postgres.sh wipe >/dev/null 2>&1 || true
start_stack
.venv/bin/python -m bench.run "$@"
