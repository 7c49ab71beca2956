#!/usr/bin/env bash
# `make test`: start a fresh local Kafka broker and a PostgreSQL server on test ports, point
# the suite at them through the environment, run every test, stop both. Exit non-zero when a
# test fails or when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON="$PWD/.venv/bin/python"
export KAFKA_PORT="${TEST_KAFKA_PORT:-19092}" KAFKA_CONTROLLER_PORT="${TEST_KAFKA_CONTROLLER_PORT:-19093}"
export KAFKA_STATE_DIR="$PWD/var/test-kafka"
export PGPORT="${TEST_PGPORT:-55433}" PG_STATE_DIR="$PWD/var/test-postgres"

cleanup() {
  deploy/kafka/kafka.sh stop || true
  deploy/postgres/postgres.sh stop || true
}
trap cleanup EXIT

deploy/kafka/kafka.sh wipe >/dev/null 2>&1 || true  # every run starts from an empty log
deploy/kafka/kafka.sh start
deploy/postgres/postgres.sh start

export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT"
DATABASE_URL="$(deploy/postgres/postgres.sh url postgres)"
export DATABASE_URL
# Lets fault tests stop and restart this broker for real.
export LEDGER_TEST_BROKER_CONTROL="$PWD/deploy/kafka/kafka.sh"

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit $status
