# shellcheck shell=bash
# cluster.sh: source it to run a throwaway PostgreSQL 15 cluster (tests, demo,
# bench).  It never touches any other cluster.
#
#   pq_cluster_start [postgresql.conf line...]
#       initdb a cluster in a new temp dir (owned by the OS user postgres when
#       run as root), start it on a free loopback port and export PGHOST (the
#       socket dir), PGPORT, PGUSER=postgres, PGDATABASE=postgres,
#       PQ_CLUSTER_DIR and PQ_CLUSTER_LOG (the server log).  It sets an EXIT
#       trap (and INT/TERM/HUP traps that exit) which calls pq_cluster_stop;
#       a caller that needs its own EXIT trap must call pq_cluster_stop in it.
#   pq_cluster_stop          stop the server and remove the temp dir (only in
#                            the shell that started it; idempotent)
#   pq_cluster_restart [m]   stop with pg_ctl mode m (fast; 'immediate' is a
#                            crash: the start then runs WAL recovery) and start
#                            again; also works from a child of the starter
#   pq_psql ARGS...          psql -X -v ON_ERROR_STOP=1 ARGS...
#   pq_createdb DB [EXT...]  create database DB and CREATE EXTENSION each EXT
#
# PATH gets the PostgreSQL 15 bin dir (PQ_PGBIN) in front, so psql, createdb,
# pgbench, pg_ctl... are the version 15 programs.

PQ_PGBIN=${PQ_PGBIN:-/usr/lib/postgresql/15/bin}
export PQ_PGBIN
case ":$PATH:" in *":$PQ_PGBIN:"*) ;; *) export PATH="$PQ_PGBIN:$PATH" ;; esac

# Run a command as the cluster's owner (postgres when we are root), from the
# cluster dir so that the current directory is always readable.
_pq_as_owner() {
    if ((EUID == 0)); then
        (cd "$PQ_CLUSTER_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$PQ_CLUSTER_DIR" && "$@")
    fi
}

_pq_ctl() {
    _pq_as_owner "$PQ_PGBIN/pg_ctl" -D "$PQ_CLUSTER_DIR/data" -l "$PQ_CLUSTER_LOG" "$@"
}

# Print a message and the tail of a log file, then exit (the trap cleans up).
_pq_fail() {
    echo "cluster.sh: $1" >&2
    if [[ -n ${2:-} && -f $2 ]]; then
        echo "---- last lines of $2:" >&2
        tail -n 40 "$2" >&2
    fi
    exit 1
}

# A TCP port nobody listens on (IPv4 or IPv6), scanning up from a random one.
_pq_free_port() {
    local -a used=()
    local addr st port i
    while read -r _ addr _ st _; do
        [[ $st == 0A ]] && used[16#${addr##*:}]=1
    done < <(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null)
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
    for ((i = 0; i <= 40000; i++)); do
        [[ -z ${used[port]:-} ]] && { echo "$port"; return 0; }
        port=$((port >= 60000 ? 20000 : port + 1))
    done
    return 1
}

# shellcheck disable=SC2120 # callers may pass no extra settings
pq_cluster_start() {
    local dir port
    dir=$(mktemp -d "${TMPDIR:-/tmp}/procq-cluster.XXXXXX")
    chmod 755 "$dir"
    export PQ_CLUSTER_DIR=$dir PQ_CLUSTER_LOG=$dir/server.log
    _PQ_CLUSTER_STARTER=1
    trap pq_cluster_stop EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if ((EUID == 0)); then chown postgres: "$dir"; fi

    _pq_as_owner "$PQ_PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust \
        -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
        _pq_fail "initdb failed" "$dir/initdb.log"
    port=$(_pq_free_port) || _pq_fail "no free TCP port"
    {
        echo "# scripts/cluster.sh"
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "fsync = off"
        echo "max_connections = 100"
        echo "log_line_prefix = '%m [%p] %q%a '"
        if (($#)); then printf '%s\n' "$@"; fi
    } >>"$dir/data/postgresql.conf"

    _pq_ctl -w -t 60 start >/dev/null 2>&1 ||
        _pq_fail "server did not start (log: $PQ_CLUSTER_LOG)" "$PQ_CLUSTER_LOG"
    export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
    unset PGHOSTADDR PGSERVICE PGPASSWORD PGOPTIONS
}

pq_cluster_stop() {
    local dir=${PQ_CLUSTER_DIR:-}
    [[ -n ${_PQ_CLUSTER_STARTER:-} && -n $dir && -d $dir ]] || return 0
    if [[ -f $dir/data/postmaster.pid ]]; then
        _pq_ctl -m fast -w -t 30 stop >/dev/null 2>&1 ||
            _pq_ctl -m immediate -w -t 30 stop >/dev/null 2>&1 ||
            echo "cluster.sh: could not stop the server in $dir" >&2
    fi
    case $dir in */procq-cluster.*) rm -rf -- "$dir" ;; esac
    unset PQ_CLUSTER_DIR PQ_CLUSTER_LOG _PQ_CLUSTER_STARTER
}

pq_cluster_restart() {
    local mode=${1:-fast}
    _pq_ctl -m "$mode" -w -t 60 stop >/dev/null ||
        _pq_fail "server did not stop (mode $mode)" "$PQ_CLUSTER_LOG"
    _pq_ctl -w -t 120 start >/dev/null ||
        _pq_fail "server did not restart" "$PQ_CLUSTER_LOG"
}

pq_psql() {
    "$PQ_PGBIN/psql" -X -v ON_ERROR_STOP=1 "$@"
}

pq_createdb() {
    local db=$1 ext
    shift
    "$PQ_PGBIN/createdb" "$db" || return
    for ext in "$@"; do
        pq_psql -q -d "$db" -c "CREATE EXTENSION $ext" || return
    done
}
