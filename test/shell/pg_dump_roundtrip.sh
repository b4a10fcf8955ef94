#!/usr/bin/env bash
# pg_dump_roundtrip.sh: jobs are user data.  A database dumped with pg_dump
# and restored into an empty database keeps its jobs, dependencies and
# bookkeeping, and the restored queue goes on working: ids continue after
# the restored ones, waiting children are released by their parent.
set -euo pipefail
: "${PQ_TEST_DB:?run through scripts/run-tests.sh}"
restored="${PQ_TEST_DB}_restored"
psql=(psql -X -q -A -t -v ON_ERROR_STOP=1)

fail() { echo "FAIL: $*" >&2; exit 1; }

"${psql[@]}" -d "$PQ_TEST_DB" >/dev/null <<'SQL'
SELECT procq.defer('parent');
SELECT procq.defer('child', depends_on => ARRAY[1], lock => 'L');
SELECT procq.defer('behind lock', lock => 'L');
SELECT procq.defer('later', scheduled_at => now() + interval '1 day');
SQL

snapshot="SELECT string_agg(format('%s:%s:%s:%s:%s:%s', id, task, status, pending_parents, lock_blocked, delayed), ' ' ORDER BY id) FROM procq.jobs"
before=$("${psql[@]}" -d "$PQ_TEST_DB" -c "$snapshot")

createdb "$restored"
trap 'dropdb --if-exists "$restored"' EXIT
pg_dump "$PQ_TEST_DB" | "${psql[@]}" -d "$restored" >/dev/null

after=$("${psql[@]}" -d "$restored" -c "$snapshot")
[[ $before == "$after" ]] || fail "jobs differ after restore: before [$before] after [$after]"
deps=$("${psql[@]}" -d "$restored" -c "SELECT string_agg(job_id || '->' || depends_on, ',') FROM procq.job_dependencies")
[[ $deps == "2->1" ]] || fail "dependencies after restore: [$deps], expected [2->1]"

# The restored queue works: the next id follows the restored ones, and the
# parent releases its child.
next=$("${psql[@]}" -d "$restored" -c "SELECT procq.defer('new')")
[[ $next == 5 ]] || fail "next job id after restore is $next, expected 5"
"${psql[@]}" -d "$restored" -c "SELECT procq.finish_job(id, 'succeeded') FROM procq.fetch_job()" >/dev/null
child=$("${psql[@]}" -d "$restored" -c "SELECT pending_parents FROM procq.jobs WHERE id = 2")
[[ $child == 0 ]] || fail "child not released after restore (pending_parents $child)"
echo "ok: pg_dump and restore keep jobs, dependencies and bookkeeping"
