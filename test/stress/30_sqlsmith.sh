#!/usr/bin/env bash
# 30_sqlsmith.sh: Debian's sqlsmith (random queries generated from the
# database's own catalog: every table, function, operator and aggregate it
# finds, procq's included) against a throwaway cluster with procq installed,
# shared_preload_libraries = 'procq' and two background workers running
# jobs, while a feeder defers small workflows and an external worker takes
# and finishes jobs.  Two runs: as a non-superuser role with procq's grants,
# then as the superuser (who may call anything, procq's trigger-firing
# INSERT, UPDATE, DELETE and MERGE on its tables included).  sqlsmith runs
# each statement in a transaction it rolls back, with statement_timeout 1s.
#
# Then: no backend crashed (no "terminated by signal" or "was terminated by
# exception", no PANIC, no reinitialization in the server log), the server
# accepts connections, procq's invariants hold over procq.jobs and
# procq.job_dependencies (see check_invariants), its indexes pass amcheck,
# and the workers still run jobs.
#
# Budget about 3 minutes: each run stops at PQ_SQLSMITH_QUERIES queries
# (default 6000) or after PQ_SQLSMITH_SECONDS seconds (default 65).  The
# seeds are printed; PQ_SQLSMITH_SEED=N repeats a run (the workers and the
# feeder make the data differ a little).
#
# sqlsmith picks procq's functions only rarely among the thousands of the
# catalog, so two more runs call procq's API directly with random edge
# values (test/stress/sqlsmith/api_fuzz.sql, PQ_API_FUZZ_CALLS calls each,
# default 5000), as the role and as the superuser: no crash, and no
# internal error (SQLSTATE class XX) either.
#
# On failure, the server log and sqlsmith's output are kept in a directory
# that is printed (the cluster itself is removed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh

queries=${PQ_SQLSMITH_QUERIES:-6000}
seconds=${PQ_SQLSMITH_SECONDS:-65}
calls=${PQ_API_FUZZ_CALLS:-5000}
seed=${PQ_SQLSMITH_SEED:-$((RANDOM * 32768 + RANDOM))}

if ! command -v sqlsmith >/dev/null; then
    echo "30_sqlsmith: sqlsmith is not installed (scripts/deps.sh stress installs it)" >&2
    exit 1
fi

feeder_pid=
keep=
out=$(mktemp -d "${TMPDIR:-/tmp}/procq-sqlsmith.XXXXXX")
chmod 755 "$out"
cleanup() {
    if [[ -n $feeder_pid ]]; then
        kill "$feeder_pid" 2>/dev/null || true
        wait "$feeder_pid" 2>/dev/null || true
    fi
    if [[ -n $keep && -n ${PQ_CLUSTER_DIR:-} ]]; then
        cp -a "$PQ_CLUSTER_LOG" "$out/server.log" 2>/dev/null || true
        echo "30_sqlsmith: kept the server log and sqlsmith's output in $out"
    else
        rm -rf -- "$out"
    fi
    pq_cluster_stop
}

pq_cluster_start "shared_preload_libraries = 'procq'" "procq.database = 'fuzz'" \
    "procq.workers = 2" "procq.poll_interval = 200ms" "procq.retry_delay = 0" \
    "track_functions = all" "log_min_messages = log" "log_min_error_statement = panic" \
    "restart_after_crash = on"
trap cleanup EXIT

psql() { pq_psql -q -d fuzz "$@"; }

pq_createdb fuzz procq
psql >/dev/null <<'EOF'
CREATE ROLE fuzzer LOGIN;
GRANT USAGE ON SCHEMA procq TO fuzzer;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO fuzzer;
GRANT SELECT ON procq.worker_status TO fuzzer;
SELECT procq.register_handler('noop', 'sql', 'SELECT $2');
SELECT procq.register_handler('fail', 'sql', 'SELECT pg_catalog.int4div(1, 0)');
-- 300 jobs: up to 3 random earlier parents each, some with locks or
-- queueing locks, some for external workers (no handler), some later,
-- some with retries.
SELECT setseed(0.3);
DO $$
DECLARE
    ids bigint[] := '{}';
    parents bigint[];
    id bigint;
BEGIN
    FOR i IN 1..300 LOOP
        parents := ARRAY(SELECT ids[1 + floor(random() * cardinality(ids))::int]
                           FROM generate_series(1, CASE WHEN cardinality(ids) = 0 THEN 0
                                                        ELSE floor(random() * 4)::int END));
        id := procq.defer(
            task => (ARRAY['noop', 'noop', 'fail', 'ext', 'ext'])[1 + floor(random() * 5)::int],
            args => jsonb_build_object('i', i),
            priority => floor(random() * 3)::int,
            depends_on => parents,
            max_attempts => 1 + floor(random() * 2)::int,
            lock => CASE WHEN random() < 0.2 THEN 'lock' || floor(random() * 3) END,
            queueing_lock => CASE WHEN random() < 0.05 THEN 'q' || i END,
            scheduled_at => CASE WHEN random() < 0.1 THEN now() + interval '1 hour' END);
        ids := ids || id;
    END LOOP;
END $$;
EOF

# The jobs that do not wait for anything else, and procq's invariants.
check_invariants() {
    psql -At <<'EOF'
SET search_path = pg_catalog, pg_temp;
WITH par AS (
    SELECT d.job_id,
           count(*) FILTER (WHERE p.status <> 'succeeded') AS unsucceeded,
           count(*) FILTER (WHERE p.status IN ('failed', 'cancelled')) AS dead
      FROM procq.job_dependencies d JOIN procq.jobs p ON p.id = d.depends_on
     GROUP BY d.job_id)
SELECT format('job %s (%s): pending_parents %s, unsucceeded parents %s, failed or cancelled parents %s, lock_blocked %s',
              j.id, j.status, j.pending_parents, coalesce(par.unsucceeded, 0),
              coalesce(par.dead, 0), j.lock_blocked)
  FROM procq.jobs j LEFT JOIN par ON par.job_id = j.id
 WHERE (j.status = 'todo' AND j.pending_parents <> coalesce(par.unsucceeded, 0))
    OR (j.status = 'todo' AND coalesce(par.dead, 0) > 0)
    OR (j.status = 'doing' AND coalesce(par.unsucceeded, 0) > 0)
    OR (j.status = 'todo' AND j.lock IS NOT NULL AND j.lock_blocked IS DISTINCT FROM EXISTS (
            SELECT FROM procq.jobs o WHERE o.lock = j.lock AND o.id <> j.id
               AND (o.status = 'doing' OR (o.status = 'todo' AND o.id < j.id))))
    OR (j.status = 'todo' AND NOT j.delayed AND j.scheduled_at > statement_timestamp() + interval '1 second')
    OR (j.status IN ('succeeded', 'failed', 'cancelled')) IS DISTINCT FROM (j.finished_at IS NOT NULL)
 ORDER BY j.id;
SELECT format('lock %s: %s doing jobs', lock, count(*)) FROM procq.jobs
 WHERE status = 'doing' AND lock IS NOT NULL GROUP BY lock HAVING count(*) > 1;
SELECT format('queueing lock %s: %s todo jobs', queueing_lock, count(*)) FROM procq.jobs
 WHERE status = 'todo' AND queueing_lock IS NOT NULL GROUP BY queueing_lock HAVING count(*) > 1;
SELECT format('dependency %s -> %s: parent not before child', job_id, depends_on)
  FROM procq.job_dependencies WHERE depends_on >= job_id;
EOF
}

# Wait until the workers have nothing left they could run (the feeder is
# stopped): no ready or doing job of a task with a handler.
wait_workers_idle() {
    local i
    for ((i = 0; i < 600; i++)); do
        [[ $(psql -At -c "SELECT count(*) FROM procq.jobs j JOIN procq.handlers h USING (task)
            WHERE j.status = 'doing' OR (j.status = 'todo' AND j.pending_parents = 0
            AND NOT j.lock_blocked AND NOT j.delayed)") == 0 ]] && return 0
        sleep 0.1
    done
    echo "30_sqlsmith: the workers did not run the ready jobs within 60 s" >&2
    psql -c "SELECT id, task, status, pending_parents, lock_blocked, delayed, worker FROM procq.jobs j
        JOIN procq.handlers h USING (task) WHERE j.status IN ('todo', 'doing') ORDER BY id LIMIT 20"
    psql -c "SELECT * FROM procq.worker_status"
    return 1
}

failed=0
fail() { echo "30_sqlsmith: FAILED: $*" >&2; failed=1; keep=1; }

wait_workers_idle || fail "the workers did not run the initial jobs"
problems=$(check_invariants)
[[ -z $problems ]] || fail "invariants broken before sqlsmith ran (the check is wrong?):"$'\n'"$problems"
echo "30_sqlsmith: $(psql -At -c "SELECT string_agg(status || ' ' || n, ', ' ORDER BY status) FROM (SELECT status, count(*) n FROM procq.jobs GROUP BY 1) s") before the runs"

# The feeder: a small workflow every half second, and an external worker
# that takes and finishes jobs of task ext.  Errors are ignored: sqlsmith
# may cancel or terminate its sessions.
(
    n=0
    while true; do
        n=$((n + 1))
        pq_psql -q -d fuzz -c "SELECT procq.defer_workflow('[{\"key\": \"a\", \"task\": \"noop\"},
            {\"key\": \"b\", \"task\": \"noop\", \"depends_on\": [\"a\"], \"lock\": \"feed\"},
            {\"key\": \"c\", \"task\": \"ext\", \"depends_on\": [\"a\"]},
            {\"key\": \"d\", \"task\": \"noop\", \"depends_on\": [\"b\", \"c\"]}]')" \
            -c "SELECT procq.finish_job(id, CASE WHEN id % 7 = 0 THEN 'failed' ELSE 'succeeded' END::procq.job_status)
                FROM procq.fetch_jobs(3, worker => 'feeder', tasks => '{ext}')" \
            >/dev/null 2>&1 || true
        sleep 0.5
    done
) &
feeder_pid=$!

log_offset=0
crashed() {
    tail -c +$((log_offset + 1)) "$PQ_CLUSTER_LOG" |
        grep -E 'terminated by signal|was terminated by exception|PANIC|TRAP:|server processes terminated|reinitializing' || true
}

# run_sqlsmith LABEL USER SEED
run_sqlsmith() {
    local label=$1 user=$2 s=$3 start rc=0 n lines
    log_offset=$(stat -c %s "$PQ_CLUSTER_LOG")
    start=$SECONDS
    echo "30_sqlsmith: run '$label' as $user, seed $s, up to $queries queries or $seconds s"
    timeout "$seconds" sqlsmith --target="host=$PGHOST port=$PGPORT dbname=fuzz user=$user" \
        --seed="$s" --max-queries="$queries" --exclude-catalog --verbose \
        >"$out/$label.out" 2>"$out/$label.err" || rc=$?
    # one progress character per query: . ok, e error, t timeout, S syntax, C crash
    n=$(sed -n '/^Generating indexes/,$p' "$out/$label.err" | grep -E '^[.etSC]+$' | tr -d '\n' | wc -c)
    echo "30_sqlsmith: run '$label': $n queries in $((SECONDS - start)) s (sqlsmith exit $rc;" \
        "$(grep -E '^error rate' "$out/$label.err" | tail -n 1 || true)," \
        "$(grep -c C <(sed -n '/^Generating indexes/,$p' "$out/$label.err" | grep -E '^[.etSC]+$') || true) lines with a broken connection)"
    if ((rc != 0 && rc != 124)); then
        fail "sqlsmith '$label' exited $rc"
        tail -n 20 "$out/$label.err" >&2
    fi
    lines=$(crashed)
    if [[ -n $lines ]]; then
        fail "run '$label': the server log shows a crash:"$'\n'"$lines"
    fi
    pq_psql -d fuzz -Atc 'SELECT 1' >/dev/null || fail "the server does not accept connections after run '$label'"
}

run_sqlsmith nonsuperuser fuzzer "$seed"
run_sqlsmith superuser postgres "$((seed + 1))"

# run_api_fuzz USER SEED
run_api_fuzz() {
    local user=$1 s=$2 start=$SECONDS lines
    log_offset=$(stat -c %s "$PQ_CLUSTER_LOG")
    echo "30_sqlsmith: $calls random calls of procq's API as $user, seed $s"
    pq_psql -q -d fuzz -U "$user" -c "SET client_min_messages = error" \
        -c "CALL public.procq_api_fuzz($calls, 0.$s)" >"$out/api_$user.out" 2>&1 ||
        fail "the API fuzz as $user stopped: $(tail -n 5 "$out/api_$user.out")"
    echo "30_sqlsmith: API fuzz as $user: $((SECONDS - start)) s"
    lines=$(crashed)
    [[ -z $lines ]] || fail "API fuzz as $user: the server log shows a crash:"$'\n'"$lines"
    pq_psql -d fuzz -Atc 'SELECT 1' >/dev/null || fail "the server does not accept connections after the API fuzz as $user"
}
psql -f test/stress/sqlsmith/api_fuzz.sql >/dev/null
run_api_fuzz fuzzer "$seed"
run_api_fuzz postgres "$((seed + 1))"
echo "30_sqlsmith: API fuzz outcomes (function: SQLSTATE count, ...):"
psql -At -c "SELECT '  ' || func || ': ' || string_agg(code || ' ' || calls, ', ' ORDER BY calls DESC)
    FROM public.fuzz_outcomes GROUP BY func ORDER BY func"
internal=$(psql -At -c "SELECT format('%s: %s: %s', code, message, statement) FROM public.fuzz_internal_errors")
[[ -z $internal ]] || fail "internal errors (SQLSTATE XX...) from procq's API:"$'\n'"$internal"
# Undo what the fuzz did to the handlers, and put back the jobs it fetched
# and left (an external worker that went away), as recover_stalled does
# once their lease has run out.
psql -c "SELECT procq.register_handler('noop', 'sql', 'SELECT \$2')" \
    -c "SELECT procq.register_handler('fail', 'sql', 'SELECT pg_catalog.int4div(1, 0)')" \
    -c "DELETE FROM procq.handlers WHERE task NOT IN ('noop', 'fail')" \
    -c "UPDATE procq.jobs SET lease_expires_at = now() - interval '1 second'
        WHERE status = 'doing' AND worker NOT LIKE 'procq worker %'" >/dev/null
echo "30_sqlsmith: $(psql -At -c 'SELECT procq.recover_stalled()') jobs the fuzz fetched and left put back by recover_stalled"

kill "$feeder_pid" 2>/dev/null || true
wait "$feeder_pid" 2>/dev/null || true
feeder_pid=

# procq's functions that sqlsmith's queries (and the workers and feeder)
# called (the superuser's queries may have reset the statistics)
echo "30_sqlsmith: calls of procq's functions during the runs:"
psql -At -c "SELECT pg_stat_force_next_flush()" >/dev/null
psql -At -c "SELECT '  ' || funcname || ' ' || calls FROM pg_stat_user_functions
    WHERE schemaname = 'procq' ORDER BY calls DESC, funcname" || true

wait_workers_idle || fail "the workers do not run jobs any more"
problems=$(check_invariants)
[[ -z $problems ]] || fail "procq's invariants are broken:"$'\n'"$problems"
amcheck=$(psql -At <<'EOF' 2>&1
CREATE EXTENSION amcheck;
SELECT count(bt_index_check(i.indexrelid, true)) FROM pg_index i
 WHERE i.indrelid IN ('procq.jobs'::regclass, 'procq.job_dependencies'::regclass, 'procq.handlers'::regclass);
EOF
) || fail "amcheck on procq's indexes: $amcheck"

# A fresh chain runs to the end.
last=$(psql -At -c "SELECT max(job_id) FROM procq.defer_workflow('[{\"key\": \"x\", \"task\": \"noop\"},
    {\"key\": \"y\", \"task\": \"noop\", \"depends_on\": [\"x\"]}]')")
for ((i = 0; i < 300; i++)); do
    [[ $(psql -At -c "SELECT status FROM procq.jobs WHERE id = $last") == succeeded ]] && break
    sleep 0.2
done
[[ $(psql -At -c "SELECT status FROM procq.jobs WHERE id = $last") == succeeded ]] ||
    fail "a fresh chain did not run after the sqlsmith runs"
lines=$(log_offset=0 crashed)
[[ -z $lines ]] || fail "the server log shows a crash"

echo "30_sqlsmith: $(psql -At -c "SELECT string_agg(status || ' ' || n, ', ' ORDER BY status) FROM (SELECT status, count(*) n FROM procq.jobs GROUP BY 1) s") after the runs; $amcheck indexes checked"
if ((failed)); then
    exit 1
fi
echo "30_sqlsmith: passed (seeds $seed, $((seed + 1)))"
