-- job_events.sql: the history of the jobs (issue 10), procq.job_events.
--  - a job that fails once and then succeeds keeps both attempts, each
--    with its worker, the failure with its error;
--  - every event: deferred (defer, defer_jobs, defer_workflow, created
--    cancelled; not a direct INSERT), fetched (fetch_job, fetch_jobs), succeeded, failed (for
--    good, and an attempt retried later), retried, cancelled (cancel_job,
--    abort, the descendants of a failed parent, cancel_workflow, a
--    'failure' step not needed), released, stalled (recover_stalled);
--  - a batch writes its events in one statement;
--  - a DBA's UPDATE of the status is recorded, one that changes no status
--    is not; a DBA's DELETE and TRUNCATE take the jobs' events with them,
--    and so does procq.purge;
--  - procq.record_events off records nothing, and only a superuser may
--    switch it.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '-'
SET procq.retry_delay = 0;

-- the events of a job, without their times
CREATE FUNCTION pg_temp.h(job bigint) RETURNS TABLE (
    event text, status procq.job_status, attempt int, worker text, error text, by_role regrole)
LANGUAGE sql AS $$
    SELECT event, status, attempt, worker, error, by_role FROM procq.job_events
    WHERE job_id = job ORDER BY id
$$;

------------------------------------------------------------------------
-- a job that fails once, then succeeds: both attempts are kept
SELECT procq.defer('flaky', max_attempts => 2) AS flaky \gset
SELECT id, attempts FROM procq.fetch_job(worker => 'w1');
SELECT procq.finish_job(:flaky, 'failed', error => 'connection refused', attempt => 1);
SELECT id, attempts FROM procq.fetch_job(worker => 'w2');
SELECT procq.finish_job(:flaky, 'succeeded', result => '{"ok": 1}', attempt => 2);
SELECT * FROM pg_temp.h(:flaky);
-- the times follow the ids, from the job's creation on
SELECT bool_and(e.at >= j.created_at) AS after_created,
       bool_and(e.at >= coalesce(e.prev, e.at)) AS in_order
  FROM (SELECT job_id, at, lag(at) OVER (ORDER BY id) AS prev FROM procq.job_events) e
  JOIN procq.jobs j ON j.id = e.job_id WHERE j.id = :flaky;

------------------------------------------------------------------------
-- deferred by defer_jobs and defer_workflow; created cancelled
SELECT procq.defer_jobs('fan', ARRAY['{"i": 1}', '{"i": 2}', '{"i": 3}']::jsonb[]) AS fan;
SELECT key, job_id FROM procq.defer_workflow('[
  {"key": "a", "task": "wf_a"},
  {"key": "b", "task": "wf_b", "depends_on": ["a"]},
  {"key": "alert", "task": "wf_alert", "depends_on": ["a"], "run_after": "failure"}
]');
SELECT job_id, event, status FROM procq.job_events WHERE job_id BETWEEN 2 AND 7 ORDER BY id;
-- the three of defer_jobs came from one statement (one INSERT of events)
SELECT count(DISTINCT (xmin::text, cmin::text)) AS statements
  FROM procq.job_events WHERE job_id BETWEEN 2 AND 4;

-- a direct INSERT (a DBA's, or pg_restore's COPY of dumped jobs, whose
-- history comes from the dump) records no 'deferred' event
INSERT INTO procq.jobs (task) VALUES ('direct') RETURNING id AS direct \gset
SELECT count(*) AS direct_events FROM procq.job_events WHERE job_id = :direct;
DELETE FROM procq.jobs WHERE id = :direct;

-- fetch_jobs: one statement for the whole batch, each with the worker
SELECT count(*) FROM procq.fetch_jobs(3, worker => 'batcher', tasks => '{fan}');
SELECT job_id, event, status, attempt, worker FROM procq.job_events
 WHERE job_id BETWEEN 2 AND 4 AND event = 'fetched' ORDER BY id;
SELECT count(DISTINCT (xmin::text, cmin::text)) AS statements
  FROM procq.job_events WHERE job_id BETWEEN 2 AND 4 AND event = 'fetched';
-- finish_jobs: failed for good and succeeded, one statement each
SELECT * FROM procq.finish_jobs('{2}', 'failed', errors => '{disk full}');
SELECT * FROM procq.finish_jobs('{3,4}', 'succeeded');
SELECT job_id, event, status, attempt, worker, error FROM procq.job_events
 WHERE job_id BETWEEN 2 AND 4 AND event IN ('failed', 'succeeded') ORDER BY id;

-- retried: retry_job, then an abort (cancelled while doing)
SELECT procq.retry_job(2);
SELECT id FROM procq.fetch_job(worker => 'w3', tasks => '{fan}');
SELECT procq.cancel_job(2, abort => true);
SELECT * FROM pg_temp.h(2);

-- the workflow: a succeeds, so the 'failure' step alert is not needed
SELECT id FROM procq.fetch_job(worker => 'w4', tasks => '{wf_a}');
SELECT procq.finish_job(5, 'succeeded');
SELECT job_id, event, status, worker, error FROM procq.job_events
 WHERE job_id BETWEEN 5 AND 7 ORDER BY id;
-- cancel_workflow cancels b
SELECT procq.cancel_workflow(5);
SELECT event, status, error FROM pg_temp.h(6);

------------------------------------------------------------------------
-- cascade: a parent that fails for good cancels its descendants, each
-- recorded after the parent's own event, naming whom it was cancelled by
SELECT procq.defer('root') AS root \gset
SELECT procq.defer('child', depends_on => ARRAY[:root]) AS child \gset
SELECT procq.defer('grandchild', depends_on => ARRAY[:child]) AS grandchild \gset
SELECT id FROM procq.fetch_job(worker => 'w5', tasks => '{root}');
SELECT procq.finish_job(:root, 'failed', error => 'root broke');
SELECT job_id - :root AS job, event, status, worker, error FROM procq.job_events
 WHERE job_id IN (:root, :child, :grandchild) AND event <> 'deferred' ORDER BY id;
-- a job deferred on the failed root is created cancelled
SELECT procq.defer('late', depends_on => ARRAY[:root]) AS late \gset
SELECT * FROM pg_temp.h(:late);
-- retry_job of the root requeues it and its descendants: retried, each
SELECT procq.retry_job(:root);
SELECT job_id - :root AS job, event, status FROM procq.job_events
 WHERE job_id IN (:root, :child, :grandchild, :late) AND event = 'retried' ORDER BY job_id;
-- the root's own event comes first
SELECT min(id) FILTER (WHERE job_id = :root) < min(id) FILTER (WHERE job_id <> :root) AS root_first
  FROM procq.job_events
 WHERE job_id IN (:root, :child, :grandchild, :late) AND event = 'retried';

------------------------------------------------------------------------
-- cancel_job of a todo job
SELECT procq.cancel_job(:grandchild);
SELECT event, status, error FROM pg_temp.h(:grandchild) WHERE event = 'cancelled';

------------------------------------------------------------------------
-- stalled: recover_stalled puts back a job whose lease ran out
SELECT procq.defer('stall', max_attempts => 2) AS stall \gset
SELECT id FROM procq.fetch_job(worker => 'w6', tasks => '{stall}');
-- a change that is not one of status (the lease) records nothing
UPDATE procq.jobs SET lease_expires_at = now() - interval '1 minute' WHERE id = :stall;
SELECT procq.recover_stalled();
SELECT event, status, attempt, worker, error ~ '^lease expired at .* on worker w6$' AS error_says
  FROM pg_temp.h(:stall);

------------------------------------------------------------------------
-- released: release_job hands the attempt back (attempt: the one released)
SELECT procq.defer('rel') AS rel \gset
SELECT id, attempts FROM procq.fetch_job(worker => 'w9', tasks => '{rel}');
SELECT procq.release_job(:rel, attempt => 1);
SELECT id, attempts FROM procq.fetch_job(worker => 'w10', tasks => '{rel}');
SELECT procq.finish_job(:rel, 'succeeded', attempt => 1);
SELECT event, status, attempt, worker, error FROM pg_temp.h(:rel);

------------------------------------------------------------------------
-- a DBA's UPDATEs: released (attempts back down), retried, cancelled,
-- failed, succeeded
SELECT id FROM procq.fetch_job(worker => 'w7', tasks => '{stall}');
UPDATE procq.jobs SET status = 'todo', attempts = attempts - 1, worker = NULL,
       started_at = NULL WHERE id = :stall;
UPDATE procq.jobs SET status = 'cancelled', error = 'by a DBA' WHERE id = :stall;
UPDATE procq.jobs SET status = 'todo' WHERE id = :stall;
UPDATE procq.jobs SET status = 'failed', error = 'by hand' WHERE id = :stall;
UPDATE procq.jobs SET status = 'todo' WHERE id = :stall;
UPDATE procq.jobs SET status = 'succeeded' WHERE id = :stall;
SELECT event, status, attempt, worker, error FROM pg_temp.h(:stall) OFFSET 3;

------------------------------------------------------------------------
-- an attempt failed without an error text (finish_job(id, 'failed') with
-- error NULL) and retried: still a 'failed' event, not a 'retried' one
SELECT procq.defer('mute', max_attempts => 2) AS mute \gset
SELECT id FROM procq.fetch_job(worker => 'w9', tasks => '{mute}');
SELECT procq.finish_job(:mute, 'failed');
SELECT event, status, attempt, worker, error FROM pg_temp.h(:mute);

------------------------------------------------------------------------
-- record_events off: nothing is recorded; an ordinary role cannot switch it
SET procq.record_events = off;
SELECT procq.defer('quiet') AS quiet \gset
SELECT id FROM procq.fetch_job(worker => 'w8', tasks => '{quiet}');
SELECT procq.finish_job(:quiet, 'succeeded');
SELECT count(*) AS quiet_events FROM procq.job_events WHERE job_id = :quiet;
RESET procq.record_events;
CREATE ROLE events_app;
SET ROLE events_app;
SET procq.record_events = off;
RESET ROLE;
SHOW procq.record_events;

------------------------------------------------------------------------
-- the events go with their jobs: DELETE, purge, TRUNCATE
SELECT count(*) AS before FROM procq.job_events WHERE job_id = :flaky;
DELETE FROM procq.jobs WHERE id = :flaky;
SELECT count(*) AS after_delete FROM procq.job_events WHERE job_id = :flaky;
-- purge deletes the finished jobs, and their events; a live job keeps its own
SELECT procq.defer('alive') AS alive \gset
SELECT count(*) > 0 AS finished_jobs_have_events FROM procq.job_events e
  JOIN procq.jobs j ON j.id = e.job_id WHERE j.status IN ('succeeded', 'failed', 'cancelled');
SELECT procq.purge('0 seconds') > 0 AS purged;
SELECT count(*) AS orphan_events FROM procq.job_events e
 WHERE NOT EXISTS (SELECT 1 FROM procq.jobs j WHERE j.id = e.job_id);
SELECT job_id = :alive AS alive, event FROM procq.job_events
 WHERE job_id IN (SELECT id FROM procq.jobs WHERE task = 'alive');
TRUNCATE procq.jobs, procq.job_dependencies;
SELECT count(*) AS after_truncate FROM procq.job_events;
DROP ROLE events_app;
