# shellcheck shell=bash
# test/shell/lib/worker.sh: helpers for the background worker tests
# (test/shell/worker_*.sh), sourced from the repository root.  Not a test.
#
#   pq_worker_cluster CONF...  start a throwaway cluster of its own (never the
#                              runner's) with procq preloaded, poll interval
#                              200ms, retry_delay 0 and the given conf lines;
#                              create the extension in database postgres
#                              (the runner's PQ_TEST_DB is not used)
#   q [-U role] SQL            run SQL, print unaligned tuples-only output
#   ok MSG / fail MSG          report a check
#   wait_until DESC SQL [S]    poll (every 0.2 s, up to S = 60 seconds) until
#                              SQL returns t; fail naming DESC on timeout
#   expect_sqlstate CODE DESC [-U role] SQL
#                              SQL must fail with SQLSTATE CODE
#   wait_final DESC SQL-ids    wait until every job whose id SQL-ids returns
#                              is succeeded, failed or cancelled

# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh

ok() { echo "ok - $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

q() {
    local user=()
    if [[ ${1:-} == -U ]]; then
        user=(-U "$2")
        shift 2
    fi
    psql -X -q -A -t -v ON_ERROR_STOP=1 "${user[@]}" -c "$1"
}

pq_worker_cluster() {
    pq_cluster_start "shared_preload_libraries = 'procq'" \
        "procq.poll_interval = 200ms" "procq.retry_delay = 0" "$@"
    q "CREATE EXTENSION procq" || fail "CREATE EXTENSION procq failed"
}

wait_until() {
    local desc=$1 cond=$2 limit=${3:-60} deadline
    deadline=$((SECONDS + limit))
    until [[ $(q "$cond") == t ]]; do
        ((SECONDS < deadline)) || fail "timed out after ${limit} s waiting for $desc"
        sleep 0.2
    done
}

wait_final() {
    wait_until "$1" "SELECT bool_and(status IN ('succeeded', 'failed', 'cancelled'))
                     FROM procq.jobs WHERE id IN ($2)" "${3:-60}"
}

expect_sqlstate() {
    local code=$1 desc=$2 out user=()
    shift 2
    if [[ $1 == -U ]]; then
        user=(-U "$2")
        shift 2
    fi
    if out=$(psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose "${user[@]}" \
        -c "$1" 2>&1 >/dev/null); then
        fail "$desc: succeeded, expected SQLSTATE $code"
    fi
    [[ $out == *"ERROR:  $code:"* ]] || fail "$desc: expected SQLSTATE $code, got: $out"
}
