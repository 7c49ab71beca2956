# Sourced by test.sh and bench.sh: a fresh local Kafka broker and a PostgreSQL server on the
# ports the caller chose, their addresses exported for the code under test, both stopped on exit.
# Needs: KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_STATE_DIR, PGPORT, PG_STATE_DIR.
# The callers' fixed ports stay below 32768: Linux gives 32768-60999 to outgoing connections,
# and the bench's broker once failed to bind 39092 while a connection held it.
export PYTHON="$PWD/.venv/bin/python"

stop_stack() {
  deploy/kafka/kafka.sh stop || true
  deploy/postgres/postgres.sh stop || true
}

start_stack() {
  trap stop_stack EXIT
  deploy/kafka/kafka.sh wipe >/dev/null 2>&1 || true  # every run starts from an empty log
  deploy/kafka/kafka.sh start
  deploy/postgres/postgres.sh start
  # Every node of a cluster (KAFKA_NODES), or the one broker.
  KAFKA_BOOTSTRAP_SERVERS="$(deploy/kafka/kafka.sh bootstrap)"
  export KAFKA_BOOTSTRAP_SERVERS
  DATABASE_URL="$(deploy/postgres/postgres.sh url postgres)"
  export DATABASE_URL
  # Lets fault tests and drills stop and restart this broker and this database for real.
  export LEDGER_TEST_BROKER_CONTROL="$PWD/deploy/kafka/kafka.sh"
  export LEDGER_TEST_DATABASE_CONTROL="$PWD/deploy/postgres/postgres.sh"
}
