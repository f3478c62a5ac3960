#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for tests and trying PAYCADENCE_DATABASE_URL out.
#
#   bash scripts/postgres.sh install        install Debian's server package if it is missing
#   bash scripts/postgres.sh start [DIR]    start a server whose files live in DIR (default
#                                           ${TMPDIR:-/tmp}/paycadence-postgres) and print its
#                                           SQLAlchemy URL; if it runs already, only print the URL
#   bash scripts/postgres.sh url [DIR]      print the URL of the server running in DIR
#   bash scripts/postgres.sh stop [DIR]     stop it (nothing to do when it is not running)
#   bash scripts/postgres.sh crash [DIR]    stop it the way a crash would (pg_ctl -m immediate:
#                                           no checkpoint); the next start recovers from the WAL
#
# The server listens on 127.0.0.1 only, on a free port, with trust authentication (no
# password): never point it at anything but loopback. Run as root, it runs as the `postgres`
# user. Only the URL goes to stdout; quiet when everything is already there.
set -euo pipefail

DB=paycadence
USER_=postgres

die() { echo "error: $*" >&2; exit 2; }

# shellcheck source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

pg_bin() {
  # the newest installed server's binaries (Debian keeps them in /usr/lib/postgresql/N/bin)
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    echo "$dir"
  fi
}

server_present() { [ -n "$(pg_bin)" ]; }

install_server() { apt_install_once postgresql server_present; }

as_pg() {
  # run a server command as the postgres user when we are root (the server refuses root)
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$USER_" -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() { as_pg "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; }

url() { echo "postgresql+psycopg://$USER_@127.0.0.1:$(cat "$DIR/port")/$DB"; }

start() {
  install_server
  BIN="$(pg_bin)"
  if [ ! -d "$DIR" ]; then
    mkdir -p "$DIR"
    chmod 700 "$DIR"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    chown "$USER_": "$DIR"
    runuser -u "$USER_" -- test -w "$DIR" \
      || die "$DIR: the postgres user cannot write here (a parent folder is closed to it); use a folder under /tmp"
  fi
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    as_pg "$BIN/initdb" -D "$DIR/data" -U "$USER_" --auth=trust --encoding=UTF8 --no-locale \
      >"$DIR/initdb.log" 2>&1 || die "initdb failed (see $DIR/initdb.log)"
  fi
  if ! running; then
    local tries=0 port
    while :; do
      # the port of the last start when it is still free (a restarted server keeps its URL)
      port="$(cat "$DIR/port" 2>/dev/null || true)"
      if [ "$tries" -gt 0 ] || [ -z "$port" ] || ! python3 -c "import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null; then
        port="$(free_port)"
      fi
      # fsync stays on (the default): the durability tests rely on a commit reaching the disk
      if as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
          -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$DIR" \
          start >/dev/null 2>&1; then
        echo "$port" >"$DIR/port"
        break
      fi
      tries=$((tries + 1))
      # a port taken between choosing and binding it: try another one, twice
      [ "$tries" -lt 3 ] || die "the server did not start: $(tail -n 3 "$DIR/server.log" 2>/dev/null | tr '\n' ' ')"
    done
  fi
  local port exists
  port="$(cat "$DIR/port")"
  exists="$(as_pg "$BIN/psql" -h 127.0.0.1 -p "$port" -U "$USER_" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'")" || die "cannot query the server on port $port"
  if [ "$exists" != 1 ]; then
    as_pg "$BIN/createdb" -h 127.0.0.1 -p "$port" -U "$USER_" "$DB" \
      || die "cannot create database $DB"
  fi
  url
}

stop() {
  local mode="$1"
  BIN="$(pg_bin)"
  [ -n "$BIN" ] || return 0
  [ -f "$DIR/data/PG_VERSION" ] || return 0
  if running; then
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -m "$mode" -w stop >/dev/null || die "pg_ctl stop failed"
  fi
}

cmd="${1:-start}"
DIR="${2:-${TMPDIR:-/tmp}/paycadence-postgres}"
DIR="$(realpath -m "$DIR")"
case "$cmd" in
  install) install_server ;;
  start) start ;;
  url)
    BIN="$(pg_bin)"
    [ -n "$BIN" ] && [ -f "$DIR/port" ] && running || die "no server runs in $DIR (start it first)"
    url ;;
  stop) stop fast ;;
  crash) stop immediate ;;
  *) die "unknown command '$cmd' (use install, start, url, stop or crash)" ;;
esac
