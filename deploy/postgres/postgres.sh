#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and local runs, from Debian's packages.
#
#   deploy/postgres/postgres.sh install|start|stop|status|wipe|createdb NAME|dropdb NAME|url NAME
#
# Env: PGPORT (15432; TCP on 127.0.0.1 only), PG_STATE_DIR (<repo>/var/postgres; see
#      state_dir below), PG_BIN (the newest /usr/lib/postgresql/*/bin).
# Auth is "trust" for user postgres: fine on loopback in a test box, never for real data.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PGPORT="${PGPORT:-15432}"
export PGCONNECT_TIMEOUT=5

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

find_bin() {
  local d
  [[ -n "${PG_BIN:-}" ]] && { echo "$PG_BIN"; return; }
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return; }
  done
  return 1
}

cmd_install() {
  find_bin >/dev/null && return 0
  ((EUID == 0)) || die "PostgreSQL server not installed and not root: apt-get install postgresql"
  log "installing PostgreSQL from Debian packages"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
  find_bin >/dev/null || die "no initdb/pg_ctl under /usr/lib/postgresql/*/bin after install"
}

# Postgres refuses to run as root, so as root its tools run as the postgres system user,
# from / (initdb fails when it cannot read its working directory, e.g. /root).
as_pg() {
  if ((EUID == 0)); then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# PG_STATE_DIR or <repo>/var/postgres, unless the postgres user cannot reach it (a clone
# under a 0700 home, say): then /var/tmp/district-ledger-pg-$PGPORT, outside the repo.
state_dir() {
  local dir="${PG_STATE_DIR:-$REPO/var/postgres}" up
  up="$dir"
  while [[ ! -d "$up" ]]; do up="$(dirname "$up")"; done
  if ((EUID != 0)) || as_pg test -x "$up" 2>/dev/null; then
    echo "$dir"
  else
    echo "/var/tmp/district-ledger-pg-$PGPORT"
  fi
}

# Sets BIN STATE DATA SOCK; only once the server is installed (state_dir needs the postgres user).
paths() {
  BIN="$(find_bin)" || die "PostgreSQL is not installed: run '$0 install'"
  STATE="$(state_dir)"
  DATA="$STATE/data"
  SOCK="$STATE/run"
  # A unix socket path may not exceed 107 bytes; fall back to a short directory.
  ((${#SOCK} + 20 < 107)) || SOCK="/tmp/district-ledger-pg-$PGPORT"
}

# Not pg_ctl status: it takes a killed postmaster that is still a zombie, or an unrelated
# process that got its pid after a reboot, for a running server.
running() {
  local pid comm state
  pid="$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null)" || return 1
  read -r _ comm state _ 2>/dev/null <"/proc/$pid/stat" || return 1
  [[ "$comm" == "(postgres)" && "$state" != [ZX] ]]
}
ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" -t 2; }
psql_() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres "$@"; }

cmd_start() {
  cmd_install
  paths
  if running; then
    ready && return 0
  else
    # Else createdb & co. would quietly talk to some other server on that port.
    ! (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT") 2>/dev/null || die "port $PGPORT is already in use by another process"
    mkdir -p "$STATE" "$SOCK"
    ((EUID != 0)) || chown postgres:postgres "$STATE" "$SOCK"
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
      local locale=C
      locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' && locale=C.UTF-8
      as_pg "$BIN/initdb" -D "$DATA" -A trust -U postgres --encoding=UTF8 --locale="$locale" >"$STATE/initdb.log" \
        || { cat "$STATE/initdb.log" >&2; die "initdb failed"; }
      echo "include_if_exists = 'district_ledger.conf'" >>"$DATA/postgresql.conf"
    fi
    # Rewritten on each start so that PGPORT and the paths are always the current ones.
    # fsync stays on (the default): tests kill the server to check crash safety.
    as_pg tee "$DATA/district_ledger.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$SOCK'
max_connections = 200
# Sized for the read models of a province on this kind of box (24 GiB): a rebuild writes a
# million archive rows, and with 128MB of buffers and 1GB of WAL between checkpoints PostgreSQL
# spent much of it writing pages out and checkpointing in the middle of the load.
shared_buffers = 1GB
max_wal_size = 4GB
checkpoint_timeout = 15min
EOF
    # Retried: after a kill -9 of the postmaster its old backends hold the shared memory for a
    # second or two, and a new postmaster refuses to start until they are gone.
    local try
    for ((try = 1; ; try++)); do
      as_pg "$BIN/pg_ctl" -D "$DATA" -l "$STATE/postgres.log" -w -t 60 start >/dev/null && break
      ((try < 10)) || { tail -n 20 "$STATE/postgres.log" >&2; die "pg_ctl start failed"; }
      sleep 1
    done
  fi
  local i
  for ((i = 0; i < 60; i++)); do
    ready && { log "ready on 127.0.0.1:$PGPORT (data $DATA)"; return 0; }
    sleep 1
  done
  tail -n 20 "$STATE/postgres.log" >&2
  die "not ready on 127.0.0.1:$PGPORT after 60s"
}

cmd_stop() {
  find_bin >/dev/null || return 0
  paths
  running || return 0
  as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
}

cmd_status() {
  paths
  if running && ready; then log "running on 127.0.0.1:$PGPORT (data $DATA)"; else
    log "not running ($DATA)"
    return 1
  fi
}

cmd_wipe() {
  cmd_stop
  find_bin >/dev/null || return 0
  paths
  rm -rf "$STATE"
}

db_exists() {
  # psql variables are not expanded in -c, hence stdin; :'n' quotes NAME as a literal.
  [[ "$(echo "select 1 from pg_database where datname = :'n'" | psql_ -tA -v n="$1")" == 1 ]]
}

cmd_createdb() {
  paths
  # A parallel caller may create it between the check and createdb: check again on failure.
  db_exists "$1" || "$BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres "$1" || db_exists "$1"
}

cmd_dropdb() {
  paths
  # --force ends the sessions still connected to it (PostgreSQL 13+).
  "$BIN/dropdb" -h 127.0.0.1 -p "$PGPORT" -U postgres --if-exists --force "$1"
}

case "${1:-}" in
  install | start | stop | status | wipe) "cmd_$1" ;;
  createdb | dropdb) [[ -n "${2:-}" ]] || die "usage: $0 $1 NAME"; "cmd_$1" "$2" ;;
  url) [[ -n "${2:-}" ]] || die "usage: $0 url NAME"; echo "postgresql+psycopg://postgres@127.0.0.1:$PGPORT/$2" ;;
  *) die "usage: $0 install|start|stop|status|wipe|createdb NAME|dropdb NAME|url NAME" ;;
esac
