#!/usr/bin/env bash
# Throwaway PostgreSQL 15 server for the test suite (used by `make test`).
#
#   scripts/pg.sh run -- CMD [ARG...]   start a server, run CMD with the variables below exported,
#                                       then ALWAYS stop the server and delete its directory;
#                                       exits with CMD's status
#   scripts/pg.sh start [DIR]           start a server in DIR (default: a new temp dir) and print
#                                       `export` lines for eval (the URL is COST_ASSETS_TEST_PG_URL)
#   scripts/pg.sh stop DIR              stop the server started in DIR and delete DIR
#
# Exported: COST_ASSETS_TEST_PG_URL=postgresql://USER:PASSWORD@127.0.0.1:PORT/postgres,
# DAGSTER_PG_USER, DAGSTER_PG_PASSWORD, DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_DB (the variables
# deploy/dagster.yaml reads) and COST_ASSETS_TEST_PG_DIR.
#
# The server listens on 127.0.0.1 only, on a free port, with a generated password (scram-sha-256);
# its unix socket lives in the temp dir. It is tuned for tests (fsync off): never keep data in it.
# PostgreSQL refuses to run as root, so as root the cluster is owned and run by the `postgres`
# user (via runuser). The binaries come from Debian's postgresql-15 (`make test` installs it);
# PG_BIN overrides their directory.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=cost_assets
MARKER=.cost_assets_pg   # only directories carrying this file are ever deleted by `stop`

log() { echo "pg.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Run a command as the cluster owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if is_root; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

check_binaries() {
    [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] || die "PostgreSQL 15 binaries not found in $PG_BIN.
  Install them with: apt-get install postgresql-15   (\`make test\` does this for you)"
    if is_root && ! id postgres >/dev/null 2>&1; then
        log "creating system user postgres (PostgreSQL refuses to run as root)"
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

cmd_start() {
    check_binaries
    local dir=${1:-}
    if [ -z "$dir" ]; then
        # As root, use /tmp: the postgres user must be able to reach the directory.
        local parent=${TMPDIR:-/tmp}
        is_root && parent=/tmp
        dir=$(mktemp -d "$parent/cost_assets_pg.XXXXXX")
    else
        mkdir -p "$dir"
        [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
    fi
    dir=$(cd "$dir" && pwd)
    touch "$dir/$MARKER"
    mkdir -p "$dir/sock"
    local password
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    (umask 077 && printf '%s\n' "$password" >"$dir/pwfile")
    is_root && chown -R postgres: "$dir"

    if ! as_owner "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$dir/pwfile" \
        --auth=scram-sha-256 -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        cmd_stop "$dir" || true
        die "initdb failed"
    fi
    rm -f "$dir/pwfile"

    # A port can be taken between picking it and binding it: retry with another one.
    local port="" attempt
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        if as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -s \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=off \
                -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start \
            >/dev/null 2>&1; then
            break
        fi
        log "start on port $port failed (attempt $attempt):"
        tail -n 5 "$dir/server.log" >&2 || true
        port=""
    done
    if [ -z "$port" ]; then
        cmd_stop "$dir" || true
        die "could not start PostgreSQL"
    fi

    local url="postgresql://$PG_USER:$password@127.0.0.1:$port/postgres"
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $dir"
    log "url: postgresql://$PG_USER:***@127.0.0.1:$port/postgres"
    cat <<EOF
export COST_ASSETS_TEST_PG_DIR='$dir'
export COST_ASSETS_TEST_PG_URL='$url'
export DAGSTER_PG_USER='$PG_USER'
export DAGSTER_PG_PASSWORD='$password'
export DAGSTER_PG_HOST='127.0.0.1'
export DAGSTER_PG_PORT='$port'
export DAGSTER_PG_DB='postgres'
EOF
}

cmd_stop() {
    local dir=${1:?usage: pg.sh stop DIR}
    [ -d "$dir" ] || { log "$dir does not exist; nothing to stop"; return 0; }
    [ -e "$dir/$MARKER" ] || die "$dir was not created by pg.sh start; refusing to delete it"
    if [ -f "$dir/data/postmaster.pid" ]; then
        if ! as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 30 -s -m fast stop >/dev/null 2>&1; then
            as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 10 -s -m immediate stop >/dev/null 2>&1 || true
        fi
        # Last resort: the postmaster this directory started (its pid is the first line of the file).
        if [ -f "$dir/data/postmaster.pid" ]; then
            local pid
            pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                log "killing postmaster $pid"
                kill -9 "$pid" 2>/dev/null || true
            fi
        fi
    fi
    rm -rf "$dir"
    log "stopped and removed $dir"
}

cmd_run() {
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "usage: pg.sh run -- CMD [ARG...]"
    local env_lines
    env_lines=$(cmd_start)
    eval "$env_lines"
    # shellcheck disable=SC2064  # expand the directory now
    trap "cmd_stop '$COST_ASSETS_TEST_PG_DIR'" EXIT
    # The command runs as a child we wait for, so a signal to this script is handled at once:
    # pass it on, wait for the child, then the EXIT trap stops the server.
    local child rc=0
    "$@" &
    child=$!
    trap 'kill -INT "$child" 2>/dev/null; wait "$child"; exit 130' INT
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 129' HUP
    wait "$child" || rc=$?
    return "$rc"
}

case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
