#!/usr/bin/env bash
# pg_harness.sh — a throw-away PostgreSQL server for the import/export-postgres tests.
#
#   pg_harness.sh ensure                      find (or apt-get install) initdb/pg_ctl/psql/pg_dump;
#                                             prints PG_BINDIR=...
#   pg_harness.sh start DIR                   initdb (first time) + start on 127.0.0.1:<free port>,
#                                             unix socket in DIR; prints KEY=VALUE lines (also in DIR/env)
#   pg_harness.sh stop DIR                    fast shutdown; no-op if not running / never started
#   pg_harness.sh destroy DIR                 stop + delete the cluster and DIR's harness files
#   pg_harness.sh status DIR                  exit 0 if the server of DIR is running
#   pg_harness.sh env DIR                     re-print the KEY=VALUE lines of a started DIR
#   pg_harness.sh createdb DIR DB             (re)create an empty database DB (drops it first)
#   pg_harness.sh load DIR [DB] [FILE...]     (re)create DB (default: ares) and load FILEs with
#                                             psql -v ON_ERROR_STOP=1 (default: reference_schema.sql
#                                             then seed.sql from this directory)
#   pg_harness.sh dump DIR OUT [MODE] [DB]    pg_dump --no-owner --no-privileges DB > OUT;
#                                             MODE = copy (default) | inserts | column-inserts
#   pg_harness.sh psql DIR [psql args...]     psql connected to the server (ON_ERROR_STOP on)
#
# Everything diagnostic goes to stderr; stdout carries only the KEY=VALUE lines (start/env/ensure),
# so a caller can parse stdout directly. Every subcommand is idempotent.
#
# Root: initdb/postgres refuse to run as root, so when run as root the server runs as the `postgres`
# system user (created by Debian's package; created here with useradd if missing) through runuser.
# DIR is chown'ed to that user. If that user cannot reach DIR (a parent directory without o+x, e.g. a
# 0700 temp dir), the cluster lives in a fresh /tmp/ares-pg.XXXXXX instead and DIR only holds the
# state files (DIR/harness.state, DIR/env); `destroy` removes both.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVER_USER="${ARES_PG_SERVER_USER:-postgres}"

# The caller's libpq environment must not leak into what we run.
unset PGDATA PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE \
      PGSERVICEFILE PGOPTIONS PGSSLMODE PGTZ PGDATESTYLE PGCLIENTENCODING PGCONNECT_TIMEOUT || true
export LC_ALL=C
export PGCLIENTENCODING=UTF8
export PGCONNECT_TIMEOUT=10

log() { printf 'pg_harness: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# ----------------------------------------------------------------------------------------------
# Locating / installing the binaries
# ----------------------------------------------------------------------------------------------
bindir_ok() {
    local d="$1"
    [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] \
        && [ -x "$d/psql" ] && [ -x "$d/pg_dump" ]
}

find_bindir() {
    local d cand
    # 1. explicit override
    if [ -n "${PG_BINDIR:-}" ] && bindir_ok "$PG_BINDIR"; then echo "$PG_BINDIR"; return 0; fi
    # 2. Debian layout, newest version first
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -V -r); do
        if bindir_ok "$d"; then echo "$d"; return 0; fi
    done
    # 3. whatever initdb is on PATH (following symlinks), e.g. /usr/local/pgsql/bin, Homebrew
    for cand in initdb /usr/local/pgsql/bin/initdb; do
        d="$(command -v "$cand" 2>/dev/null || true)"
        [ -n "$d" ] || continue
        d="$(dirname "$(readlink -f "$d")")"
        if bindir_ok "$d"; then echo "$d"; return 0; fi
    done
    # 4. pg_config, when it belongs to a server install
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if bindir_ok "$d"; then echo "$d"; return 0; fi
    fi
    return 1
}

apt_install_postgres() {
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL binaries not found and apt-get is unavailable; install PostgreSQL (server + client) or set PG_BINDIR"
    local SUDO=()
    if ! is_root; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=(sudo -n)
        else die "PostgreSQL binaries not found; installing them needs root (apt-get install postgresql)"; fi
    fi
    log "PostgreSQL not found: installing Debian's postgresql with apt-get (a minute or so)"
    local opts=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    if ! DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install "${opts[@]}" postgresql postgresql-client >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install "${opts[@]}" postgresql postgresql-client >&2
    fi
}

ensure_server_user() {
    is_root || return 0
    if ! id -u "$SERVER_USER" >/dev/null 2>&1; then
        log "creating system user $SERVER_USER"
        useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin --user-group "$SERVER_USER" \
            || die "could not create user $SERVER_USER"
    fi
    command -v runuser >/dev/null 2>&1 || command -v su >/dev/null 2>&1 || die "need runuser or su to drop root"
}

BINDIR=""
ensure() {
    if ! BINDIR="$(find_bindir)"; then
        apt_install_postgres
        BINDIR="$(find_bindir)" || die "PostgreSQL installed but initdb/pg_ctl/postgres/psql/pg_dump still not found"
    fi
    ensure_server_user
}

# Run a command as the server owner (root → $SERVER_USER), from / so an unreadable cwd is harmless.
as_owner() {
    if is_root; then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u "$SERVER_USER" -- "$@")
        else
            local q; q="$(printf '%q ' "$@")"
            (cd / && su -s /bin/sh "$SERVER_USER" -c "$q")
        fi
    else
        (cd / && "$@")
    fi
}

# ----------------------------------------------------------------------------------------------
# State of one DIR
# ----------------------------------------------------------------------------------------------
DIR="" STATE="" RUNDIR="" SOCKDIR="" PORT="" PGDATA_DIR=""

set_dir() {
    [ -n "${1:-}" ] || die "missing DIR argument"
    DIR="$(realpath -m "$1")"
    STATE="$DIR/harness.state"
}

load_state() {
    RUNDIR="" SOCKDIR="" PORT=""
    if [ -f "$STATE" ]; then
        RUNDIR="$(sed -n 's/^RUNDIR=//p' "$STATE")"
        SOCKDIR="$(sed -n 's/^SOCKDIR=//p' "$STATE")"
        PORT="$(sed -n 's/^PORT=//p' "$STATE")"
    fi
    PGDATA_DIR="${RUNDIR:+$RUNDIR/data}"
}

save_state() {
    printf 'RUNDIR=%s\nSOCKDIR=%s\nPORT=%s\n' "$RUNDIR" "$SOCKDIR" "$PORT" >"$STATE.tmp"
    mv "$STATE.tmp" "$STATE"
}

owner_can_use() { # DIR usable (traverse + write) by the server owner?
    as_owner test -d "$1" -a -x "$1" -a -w "$1" 2>/dev/null
}

make_owned_tmpdir() { # $1 = prefix
    local d; d="$(mktemp -d "/tmp/$1.XXXXXX")"
    if is_root; then chown "$SERVER_USER:" "$d"; fi
    chmod 0700 "$d"
    echo "$d"
}

port_in_use() { # something accepts TCP connections on 127.0.0.1:$1 ?
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
    local p _
    for _ in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "no free TCP port found"
}

postmaster_pid() { head -n 1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true; }

pid_is_zombie() { # a killed postmaster stays a zombie until PID 1 reaps it (seconds in containers)
    local st
    st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
    [ "$st" = "Z" ]
}

wait_zombie_gone() {
    local pid _
    pid="$(postmaster_pid)"
    [ -n "$pid" ] || return 0
    for _ in $(seq 1 30); do
        pid_is_zombie "$pid" || return 0
        sleep 0.5
    done
}

is_running() {
    [ -n "$PGDATA_DIR" ] && [ -f "$PGDATA_DIR/PG_VERSION" ] || return 1
    local pid; pid="$(postmaster_pid)"
    [ -n "$pid" ] || return 1
    pid_is_zombie "$pid" && return 1
    as_owner "$BINDIR/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

emit_env() {
    local url="postgresql://postgres@127.0.0.1:$PORT/postgres"
    {
        echo "PG_BINDIR=$BINDIR"
        echo "PGHOST=127.0.0.1"
        echo "PGPORT=$PORT"
        echo "PGUSER=postgres"
        echo "PGDATABASE=postgres"
        echo "PGSOCKETDIR=$SOCKDIR"
        echo "PGDATA=$PGDATA_DIR"
        echo "PG_HARNESS_DIR=$DIR"
        echo "DATABASE_URL=$url"
    } >"$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
    cat "$DIR/env"
}

# ----------------------------------------------------------------------------------------------
# Subcommands
# ----------------------------------------------------------------------------------------------
cmd_start() {
    set_dir "${1:-}"
    ensure
    mkdir -p "$DIR"
    load_state

    if [ -z "$RUNDIR" ]; then
        # First start: decide where the cluster and the socket live.
        if is_root; then chown "$SERVER_USER:" "$DIR"; fi
        if owner_can_use "$DIR"; then
            RUNDIR="$DIR"
        else
            RUNDIR="$(make_owned_tmpdir ares-pg)"
            log "$SERVER_USER cannot reach $DIR (a parent lacks o+x); cluster goes to $RUNDIR"
        fi
        # unix socket path = SOCKDIR/.s.PGSQL.NNNNN must fit in sun_path (107 bytes)
        if [ $(( ${#RUNDIR} + 17 )) -le 100 ]; then
            SOCKDIR="$RUNDIR"
        else
            SOCKDIR="$(make_owned_tmpdir ares-pgsock)"
            log "$RUNDIR is too long for a unix socket path; socket goes to $SOCKDIR"
        fi
        PGDATA_DIR="$RUNDIR/data"
        save_state
    fi

    if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
        local t0=$SECONDS
        rm -rf "$PGDATA_DIR"
        log "initdb $PGDATA_DIR"
        if ! as_owner "$BINDIR/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --locale=C \
                --no-sync >"$RUNDIR/initdb.log" 2>&1; then
            cat "$RUNDIR/initdb.log" >&2 || true
            die "initdb failed"
        fi
        # Our settings live in harness.conf (rewritten at every start), included from postgresql.conf.
        echo "include_if_exists = 'harness.conf'" | as_owner tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
        log "initdb done in $((SECONDS - t0))s"
    fi

    if is_running; then
        log "already running on 127.0.0.1:$PORT"
        emit_env
        return 0
    fi

    wait_zombie_gone
    local attempt t0=$SECONDS
    for attempt in 1 2 3 4 5; do
        if [ -z "$PORT" ] || port_in_use "$PORT"; then PORT="$(pick_port)"; fi
        as_owner tee "$PGDATA_DIR/harness.conf" >/dev/null <<EOF
# written by pg_harness.sh at every start
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKDIR'
max_connections = 20
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
log_timezone = 'UTC'
datestyle = 'iso, mdy'
lc_messages = 'C'
EOF
        save_state
        if as_owner "$BINDIR/pg_ctl" start -D "$PGDATA_DIR" -l "$RUNDIR/postgres.log" -w -t 60 >/dev/null 2>&1; then
            log "started PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT in $((SECONDS - t0))s"
            emit_env
            return 0
        fi
        log "start attempt $attempt on port $PORT failed; last log lines:"
        tail -n 5 "$RUNDIR/postgres.log" >&2 2>/dev/null || true
        PORT=""
    done
    die "could not start PostgreSQL (see $RUNDIR/postgres.log)"
}

cmd_stop() {
    set_dir "${1:-}"
    [ -f "$STATE" ] || { log "nothing to stop in $DIR"; return 0; }
    BINDIR="$(find_bindir)" || { log "PostgreSQL binaries not found; nothing to stop"; return 0; }
    load_state
    if is_running; then
        if as_owner "$BINDIR/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 60 >/dev/null; then
            log "stopped (port $PORT)"
        elif is_running; then
            log "fast shutdown did not finish; trying immediate shutdown"
            as_owner "$BINDIR/pg_ctl" stop -D "$PGDATA_DIR" -m immediate -w -t 30 >/dev/null
        fi
    else
        log "not running"
    fi
}

cmd_destroy() {
    set_dir "${1:-}"
    [ -f "$STATE" ] || { log "nothing to destroy in $DIR"; return 0; }
    cmd_stop "$DIR"
    load_state
    if [ -n "$SOCKDIR" ] && [ "$SOCKDIR" != "$RUNDIR" ]; then rm -rf "$SOCKDIR"; fi
    if [ -n "$RUNDIR" ] && [ "$RUNDIR" != "$DIR" ]; then rm -rf "$RUNDIR"; fi
    rm -rf "$DIR/data" "$DIR/postgres.log" "$DIR/initdb.log" "$DIR/env" "$STATE"
    log "destroyed"
}

need_running() {
    set_dir "${1:-}"
    [ -f "$STATE" ] || die "$DIR was never started (run: $0 start $DIR)"
    BINDIR="$(find_bindir)" || die "PostgreSQL binaries not found (run: $0 ensure)"
    load_state
    is_running || die "server of $DIR is not running (run: $0 start $DIR)"
}

conn_args() { echo "-h 127.0.0.1 -p $PORT -U postgres"; }

cmd_status() {
    set_dir "${1:-}"
    [ -f "$STATE" ] || { log "never started"; return 1; }
    BINDIR="$(find_bindir)" || return 1
    load_state
    if is_running; then log "running on 127.0.0.1:$PORT"; return 0; fi
    log "stopped"; return 1
}

cmd_env() {
    need_running "${1:-}"
    emit_env
}

cmd_createdb() {
    need_running "${1:-}"
    local db="${2:-ares}"
    local q="\"${db//\"/\"\"}\""
    # shellcheck disable=SC2046
    "$BINDIR/psql" $(conn_args) -d postgres -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS $q" \
        -c "CREATE DATABASE $q ENCODING 'UTF8' TEMPLATE template0" >/dev/null
}

cmd_load() {
    local dir="${1:-}"; shift || true
    local db="${1:-ares}"; [ $# -gt 0 ] && shift
    need_running "$dir"
    local files=("$@")
    [ ${#files[@]} -gt 0 ] || files=("$HERE/reference_schema.sql" "$HERE/seed.sql")
    cmd_createdb "$dir" "$db"
    local f
    for f in "${files[@]}"; do
        [ -f "$f" ] || die "no such file: $f"
        # shellcheck disable=SC2046
        "$BINDIR/psql" $(conn_args) -d "$db" -X -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null
        log "loaded $(basename "$f") into $db"
    done
}

cmd_dump() {
    local dir="${1:-}" out="${2:-}" mode="${3:-copy}" db="${4:-ares}"
    [ -n "$out" ] || die "usage: $0 dump DIR OUT [copy|inserts|column-inserts] [DB]"
    need_running "$dir"
    local extra=()
    case "$mode" in
        copy) ;;
        inserts) extra=(--inserts) ;;
        column-inserts) extra=(--column-inserts) ;;
        *) die "unknown dump mode: $mode" ;;
    esac
    # shellcheck disable=SC2046
    "$BINDIR/pg_dump" $(conn_args) -d "$db" --no-owner --no-privileges "${extra[@]}" -f "$out"
    log "dumped $db ($mode) to $out"
}

cmd_psql() {
    local dir="${1:-}"; shift || true
    need_running "$dir"
    # shellcheck disable=SC2046
    exec "$BINDIR/psql" $(conn_args) -X -v ON_ERROR_STOP=1 "$@"
}

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

sub="${1:-}"; [ $# -gt 0 ] && shift
case "$sub" in
    ensure)   ensure; echo "PG_BINDIR=$BINDIR" ;;
    start)    cmd_start "$@" ;;
    stop)     cmd_stop "$@" ;;
    destroy)  cmd_destroy "$@" ;;
    status)   cmd_status "$@" ;;
    env)      cmd_env "$@" ;;
    createdb) cmd_createdb "$@" ;;
    load)     cmd_load "$@" ;;
    dump)     cmd_dump "$@" ;;
    psql)     cmd_psql "$@" ;;
    *)        usage ;;
esac
