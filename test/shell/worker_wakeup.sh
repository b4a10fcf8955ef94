#!/usr/bin/env bash
# worker_wakeup.sh: a transaction that makes a job ready wakes the idle
# background workers when it commits; polling is only a safety net.  With
# procq.poll_interval = 1h, a worker that is asleep must still start
# (1) a job deferred ready, (2) a child released by its parent's success,
# (3) the next job of a lock queue once its head finishes — each long
# before the next poll could.  And a rolled-back defer wakes nobody into
# running it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/shell/lib/worker.sh

pq_worker_cluster "procq.workers = 1" "procq.poll_interval = '1h'"
q "CREATE TABLE ran (job_id bigint PRIMARY KEY)" >/dev/null
q "SELECT procq.register_handler('run', 'sql', 'INSERT INTO ran VALUES (\$2)')" >/dev/null

# Let the worker finish its startup round and fall asleep.
wait_until "the worker is idle" \
    "SELECT count(*) = 1 FROM procq.worker_status WHERE state = 'idle'"
sleep 1

# (1) deferred ready
id=$(q "SELECT procq.defer('run')")
wait_until "job $id, deferred ready, ran without waiting for the 1h poll" \
    "SELECT status = 'succeeded' FROM procq.jobs WHERE id = $id" 30
ok "a ready defer woke the sleeping worker (job $id)"

# (2) released by its parent, which an external worker finishes
parent=$(q "SELECT procq.defer('external')")
child=$(q "SELECT procq.defer('run', depends_on => ARRAY[$parent])")
sleep 1
[[ $(q "SELECT status FROM procq.jobs WHERE id = $child") == todo ]] ||
    fail "child $child ran before its parent succeeded"
q "SELECT procq.finish_job(id, 'succeeded') FROM procq.fetch_job(worker => 'external')" >/dev/null
wait_until "child $child ran once its parent succeeded" \
    "SELECT status = 'succeeded' FROM procq.jobs WHERE id = $child" 30
ok "a parent's success woke the sleeping worker for its child (job $child)"

# (3) the next job of a lock queue
head=$(q "SELECT procq.defer('external', lock => 'L')")
next=$(q "SELECT procq.defer('run', lock => 'L')")
q "SELECT id FROM procq.fetch_job(worker => 'external')" >/dev/null
sleep 1
[[ $(q "SELECT status FROM procq.jobs WHERE id = $next") == todo ]] ||
    fail "job $next ran while the lock's head $head was running"
q "SELECT procq.finish_job($head, 'succeeded')" >/dev/null
wait_until "job $next ran once the lock's head finished" \
    "SELECT status = 'succeeded' FROM procq.jobs WHERE id = $next" 30
ok "the end of a lock's head woke the sleeping worker for the next job (job $next)"

# A rolled-back defer leaves nothing to run.
q "BEGIN; SELECT procq.defer('run'); ROLLBACK" >/dev/null
sleep 1
[[ $(q "SELECT count(*) FROM procq.jobs WHERE status <> 'succeeded'") == 0 ]] ||
    fail "a rolled-back defer left a job behind"
ok "a rolled-back defer left nothing behind"
