#!/usr/bin/env bash
# `make test`: start a fresh local Kafka broker and a PostgreSQL server on test ports, point
# the suite at them through the environment, run every test, stop both. Exit non-zero when a
# test fails or when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
export KAFKA_PORT="${TEST_KAFKA_PORT:-19092}" KAFKA_CONTROLLER_PORT="${TEST_KAFKA_CONTROLLER_PORT:-19093}"
export KAFKA_STATE_DIR="$PWD/var/test-kafka"
export PGPORT="${TEST_PGPORT:-15433}" PG_STATE_DIR="$PWD/var/test-postgres"
# shellcheck source=deploy/stack.sh
source deploy/stack.sh

deploy/browser.sh  # headless Chromium for the dashboard's browser tests
start_stack

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit $status
