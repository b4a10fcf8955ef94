#!/usr/bin/env bash
# worker_poison.sh: a SQL job whose handler kills its own worker cannot
# bring the queue down.  Its worker's batch is rolled back, so the job,
# never counted as attempted, would run again forever; instead, once it has
# killed 3 workers it is failed ("its procq worker died 3 times while
# running it") and the other jobs all run.  A job in flight when a worker
# dies once still runs again (and succeeds).
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/shell/lib/worker.sh

pq_worker_cluster "procq.workers = 1" "procq.batch_size = 1"
q "CREATE TABLE ran (job_id bigint PRIMARY KEY)" >/dev/null
q "SELECT procq.register_handler('ok', 'sql', 'INSERT INTO ran VALUES (\$2)')" >/dev/null
q "SELECT procq.register_handler('suicide', 'sql', 'SELECT pg_terminate_backend(pg_backend_pid())')" >/dev/null
q "SELECT procq.register_handler('once', 'sql',
     'SELECT CASE WHEN nextval(''once_seq'') = 1 THEN pg_terminate_backend(pg_backend_pid()) END')" >/dev/null
q "CREATE SEQUENCE once_seq" >/dev/null

# The poison job first (priority), then jobs that must still run.
poison=$(q "SELECT procq.defer('suicide', priority => 10, max_attempts => 5)")
once=$(q "SELECT procq.defer('once', priority => 5)")
q "SELECT procq.defer('ok') FROM generate_series(1, 5)" >/dev/null

wait_final "all jobs" "SELECT id FROM procq.jobs"
state=$(q "SELECT status || ' / ' || attempts || ' / ' || error FROM procq.jobs WHERE id = $poison")
[[ $state == "failed / 1 / not run again: its procq worker died 3 times while running it" ]] ||
    fail "poison job: $state"
ok "the job that killed its worker 3 times ended failed: $state"

[[ $(q "SELECT status FROM procq.jobs WHERE id = $once") == succeeded ]] ||
    fail "the job that killed its worker once did not run again to success"
ok "a job whose worker died once ran again and succeeded"

[[ $(q "SELECT count(*) FROM procq.jobs WHERE task = 'ok' AND status = 'succeeded'") == 5 &&
   $(q "SELECT count(*) FROM ran") == 5 ]] || fail "the other jobs did not all run once"
ok "the other 5 jobs ran, each once"

wait_until "a worker is running again" "SELECT count(*) = 1 FROM procq.worker_status" 60
ok "the worker was restarted and runs"
