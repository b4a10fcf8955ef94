#!/usr/bin/env bash
# 10_soak.sh: the fault soak of issue 8 (make stress, scripts/stress.sh).
#
# A throwaway cluster with shared_preload_libraries = procq and background
# workers; test/stress/soak/soak.py defers a random DAG of at least 20,000
# jobs (0-3 random earlier parents each; SQL handlers that fail at random
# with retries; jobs with locks; 'ext' jobs for external worker processes
# that finish with fencing) and drains it while it SIGKILLs background
# workers, terminates external workers' connections, lets external workers
# stall past their lease and then try to finish, and once stops the server
# with pg_ctl -m immediate and starts it again.  Then it checks: every job
# final; no attempt started before all its parents' success had committed;
# every SQL job's effect exactly once; every job with an ancestor failed
# for good cancelled (and only those); no stale finish accepted; locks
# respected; recover_stalled() has nothing left to do; no PANIC or crash in
# the server log but the intended ones.  It prints the seed and a summary.
#
# Settings (environment): PQ_SOAK_SEED, PQ_SOAK_JOBS (20000),
# PQ_SOAK_EXT_WORKERS (4), PQ_SOAK_BG_WORKERS (2), PQ_SOAK_KILLS (8),
# PQ_SOAK_STALLS (25), PQ_SOAK_TIMEOUT (330 s for the drain); see
# test/stress/soak/soak.py.  PQ_SOAK_SABOTAGE=nofence makes the external
# workers finish without fencing: the soak must then fail.  On failure the
# server log is kept as ${TMPDIR:-/tmp}/procq-soak-SEED.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh

python=${PQ_PYTHON:-/usr/bin/python3}
"$python" -c 'import psycopg' 2>/dev/null || {
    echo "10_soak.sh: $python cannot import psycopg (scripts/deps.sh stress installs python3-psycopg)" >&2
    exit 1
}
export PQ_SOAK_SEED=${PQ_SOAK_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}

pq_cluster_start \
    "shared_preload_libraries = 'procq'" \
    "procq.workers = ${PQ_SOAK_BG_WORKERS:-2}" \
    "procq.poll_interval = 200ms" \
    "procq.retry_delay = 0" \
    "track_commit_timestamp = on" \
    "restart_after_crash = on" \
    "max_connections = 60"
work=$(mktemp -d "${TMPDIR:-/tmp}/procq-soak.XXXXXX")
soak_exit() {
    local rc=$?
    if ((rc != 0)) && [[ -n ${PQ_CLUSTER_LOG:-} && -f $PQ_CLUSTER_LOG ]]; then
        cp "$PQ_CLUSTER_LOG" "${TMPDIR:-/tmp}/procq-soak-$PQ_SOAK_SEED.log" &&
            echo "10_soak.sh: server log kept as ${TMPDIR:-/tmp}/procq-soak-$PQ_SOAK_SEED.log"
    fi
    rm -rf -- "$work"
    pq_cluster_stop
    exit "$rc"
}
trap soak_exit EXIT
pq_psql -q -c 'CREATE EXTENSION procq'
PQ_SOAK_WORKDIR=$work "$python" test/stress/soak/soak.py run
