#!/usr/bin/env bash
# `make run`: the whole system on this machine with sample data. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON="$PWD/.venv/bin/python"
export INGEST_PORT="${INGEST_PORT:-8001}" API_PORT="${API_PORT:-8002}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"
export DATABASE_URL="${DATABASE_URL:-sqlite:///$PWD/var/ledger.db}"
LEDGER=.venv/bin/ledger
LOGS=var/log
mkdir -p "$LOGS"
pids=()

stop_all() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  deploy/kafka/kafka.sh stop || true
  echo "stopped."
}
trap stop_all INT TERM EXIT

wait_ready() {  # url, name
  for _ in $(seq 1 120); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "$2 did not become ready; see $LOGS/$2.log" >&2
  return 1
}

deploy/kafka/kafka.sh start
$LEDGER migrate
for service in ingest projector api; do
  $LEDGER serve "$service" >"$LOGS/$service.log" 2>&1 &
  pids+=($!)
done
wait_ready "http://127.0.0.1:$INGEST_PORT/readyz" ingest
wait_ready "http://127.0.0.1:$API_PORT/readyz" api
$LEDGER demo --ingest-url "http://127.0.0.1:$INGEST_PORT" --small
DASHBOARD_TOKEN="$($LEDGER tokens create --role dashboard --label "make run" 2>/dev/null | tail -n 1)"
AUDITOR_TOKEN="$($LEDGER tokens create --role auditor --label "make run" 2>/dev/null | tail -n 1)"

cat <<MSG

District Ledger is running.
  ingest     http://127.0.0.1:$INGEST_PORT/docs
  query API  http://127.0.0.1:$API_PORT/docs
  dashboard  http://127.0.0.1:$API_PORT/dashboard#token=$DASHBOARD_TOKEN
  metrics    http://127.0.0.1:$INGEST_PORT/metrics, http://127.0.0.1:$API_PORT/metrics, projector http://127.0.0.1:8003/metrics
  logs       $LOGS/
  dashboard token: $DASHBOARD_TOKEN
  auditor token:   $AUDITOR_TOKEN
  try: curl -H "Authorization: Bearer $DASHBOARD_TOKEN" 'http://127.0.0.1:$API_PORT/v1/summary?group_by=province'
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
echo "a service exited; see $LOGS/" >&2
