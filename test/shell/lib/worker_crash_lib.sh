# shellcheck shell=bash
# worker_crash_lib.sh: helpers for the background worker tests
# (test/shell/worker_*.sh).  Sourced, not run.  Each script starts its own
# throwaway cluster with procq preloaded (pq_start); the EXIT trap of
# scripts/cluster.sh removes it, also when a check fails.

cd "$(dirname "${BASH_SOURCE[0]}")/../../.." || exit 1
# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh

ok() { echo "ok - $*"; }

# fail MESSAGE: report, show the end of the server log, exit 1.
fail() {
    echo "FAIL: $*"
    if [[ -n ${PQ_CLUSTER_LOG:-} && -f $PQ_CLUSTER_LOG ]]; then
        echo "---- last lines of the server log:" >&2
        tail -n 25 "$PQ_CLUSTER_LOG" >&2
    fi
    exit 1
}

# sql SQL: run SQL (no psql variables), print the rows unaligned.
sql() { pq_psql -qAt -c "$1"; }

# A string of digits no other process on the machine has in its command
# line: makes `pgrep -f` find only our own programs (and makes sleep
# durations such as 300.<nonce> unique).
nonce() { echo "$(date +%N)$$$RANDOM"; }

# pq_start N [CONF...]: a cluster with procq preloaded, shell jobs enabled,
# quick polling, immediate retries, N workers (later CONF lines win), procq
# installed in postgres; returns once the N workers are idle.
pq_start() {
    local n=$1
    shift
    pq_cluster_start "shared_preload_libraries = 'procq'" "procq.workers = $n" \
        "procq.enable_shell = on" "procq.poll_interval = 200ms" \
        "procq.retry_delay = 0" "$@"
    sql "CREATE EXTENSION procq"
    wait_for "(SELECT count(*) FILTER (WHERE state = 'idle') FROM procq.worker_status) = $n" \
        "$n procq workers did not become idle" 60 "SELECT * FROM procq.worker_status"
}

# register TASK KIND COMMAND [TIMEOUT]: procq.register_handler, with the
# command passed verbatim (psql variable, no SQL quoting needed).
register() {
    pq_psql -qAt -v task="$1" -v kind="$2" -v cmd="$3" -v tmo="${4:-}" >/dev/null <<'SQL'
SELECT procq.register_handler(:'task', :'kind', :'cmd', NULLIF(:'tmo', '')::interval);
SQL
}

# register_slow SECONDS: register shell handler 'slow', whose program sleeps
# SECONDS (as "sleep SECONDS.NONCE", so that pgrep finds it) the first time
# it runs for a job, and prints "second run" at once the next time.  Prints
# the nonce.
register_slow() {
    local n script=$PQ_CLUSTER_DIR/slow.sh
    n=$(nonce)
    cat >"$script" <<'EOS'
if [ -e "$0.ran.$PROCQ_JOB_ID" ]; then echo "second run"; exit 0; fi
: >"$0.ran.$PROCQ_JOB_ID"
exec sleep "$1"
EOS
    chmod 755 "$script"
    register slow shell "/bin/sh $script $1.$n"
    echo "$n"
}

# defer TASK [ARGS_JSON [MAX_ATTEMPTS]]: defer a job, print its id.
defer() {
    local args=${2:-}
    [[ -n $args ]] || args='{}'
    pq_psql -qAt -v task="$1" -v args="$args" -v ma="${3:-1}" <<'SQL'
SELECT procq.defer(:'task', :'args'::jsonb, max_attempts => :'ma'::int);
SQL
}

# wait_for CONDITION MESSAGE [SECONDS [DIAG_SQL]]: poll the SQL boolean
# CONDITION (errors, e.g. while the server restarts, count as false) until
# true; else fail with MESSAGE and the rows of DIAG_SQL.
wait_for() {
    local cond=$1 msg=$2 secs=${3:-60} diag=${4:-} end v
    end=$((SECONDS + secs))
    while :; do
        v=$(sql "SELECT ($cond)::boolean" 2>/dev/null) || v=
        [[ $v == t ]] && return 0
        if ((SECONDS >= end)); then
            [[ -z $diag ]] || sql "$diag" 2>&1 | sed 's/^/    /' || true
            fail "$msg (waited $secs s)"
        fi
        sleep 0.1
    done
}

# check_job ID DESCRIPTION CONDITION: CONDITION (SQL over procq.jobs) must
# hold for job ID.
check_job() {
    local v
    v=$(sql "SELECT ($3)::boolean FROM procq.jobs WHERE id = $1")
    [[ $v == t ]] ||
        fail "$2: job $1 is $(sql "SELECT format('%s, attempts %s, result %s, error %L', status, attempts, left(result::text, 200), left(error, 300)) FROM procq.jobs WHERE id = $1")"
    ok "$2"
}

# wait_gone MARKER SECONDS: wait until no process has MARKER in its command
# line; returns 1 if some still do after SECONDS.
wait_gone() {
    local end=$((SECONDS + $2))
    while pgrep -f -- "$1" >/dev/null; do
        ((SECONDS < end)) || return 1
        sleep 0.1
    done
}

# log_size: the server log's size now, for wait_crash.
log_size() { stat -c %s "$PQ_CLUSTER_LOG"; }

# wait_crash PID LOG_SIZE: wait until the server log, past LOG_SIZE bytes,
# shows that the postmaster saw worker PID die of SIGKILL and reinitialized,
# then until the server accepts queries again.
wait_crash() {
    local end=$((SECONDS + 60)) new
    while :; do
        new=$(tail -c "+$(($2 + 1))" "$PQ_CLUSTER_LOG")
        [[ $new == *"(PID $1) was terminated by signal 9"* &&
            $new == *"all server processes terminated; reinitializing"* ]] && break
        ((SECONDS < end)) || fail "the postmaster did not crash-restart after worker $1 was killed"
        sleep 0.1
    done
    wait_for "true" "the server did not come back after worker $1 was killed"
}
