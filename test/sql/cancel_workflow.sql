-- cancel_workflow.sql: procq.cancel_workflow(workflow_id, abort) (issue 9).
--  - Cancels every todo job of the workflow, the ones waiting on parents
--    and clean-up steps (run_after 'completion') included: nothing of it
--    runs any more.  Doing jobs run on without abort; with abort they are
--    stopped as cancel_job(abort => true) stops them (error 'aborted by
--    procq.cancel_job': the worker's finish_job gets PQ002).  Final jobs
--    are left alone.  Returns how many jobs it cancelled.
--  - Jobs of other workflows are untouched; their children (in their own
--    workflow) follow the usual cascade.
--  - P0002 for a workflow without jobs; 42501 (nothing changes) when the
--    caller may not act on a job it would cancel; NULL arguments 22004.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_cwf_alice, regress_cwf_bob;
RESET client_min_messages;
\pset null '(null)'
\set VERBOSITY default
SET procq.retry_delay = 0;

CREATE FUNCTION pg_temp.jobs(w bigint) RETURNS TABLE (step text, status procq.job_status, error text)
LANGUAGE sql AS $$
    SELECT coalesce(step_key, task), status, error FROM procq.jobs WHERE workflow_id = w ORDER BY id
$$;

-- done (succeeded), broken (failed), running (doing), a waiting chain
-- wait-1 -> wait-2, a ready job, and a clean-up step after everything
SELECT job_id AS w FROM procq.defer_workflow('[
    {"key": "done", "task": "cw-done"},
    {"key": "broken", "task": "cw-broken"},
    {"key": "running", "task": "cw-running"},
    {"key": "wait-1", "task": "cw-wait", "depends_on": ["running"]},
    {"key": "wait-2", "task": "cw-wait", "depends_on": ["wait-1"]},
    {"key": "ready", "task": "cw-ready"},
    {"key": "cleanup", "task": "cw-cleanup", "run_after": "completion",
     "depends_on": ["done", "running", "wait-2"]}]') WHERE key = 'done' \gset
SELECT id AS done_id FROM procq.fetch_job(tasks => '{cw-done}') \gset
SELECT procq.finish_job(:done_id, 'succeeded');
SELECT id AS broken_id FROM procq.fetch_job(tasks => '{cw-broken}') \gset
SELECT procq.finish_job(:broken_id, 'failed', error => 'boom');
SELECT id AS running_id FROM procq.fetch_job(tasks => '{cw-running}') \gset
-- another workflow, with a child in a third one: untouched
SELECT procq.defer('other') AS other \gset
SELECT procq.defer('other-child', depends_on => ARRAY[:other, :w]) AS other_child \gset
SELECT * FROM pg_temp.jobs(:w);

-- errors first: nothing changes
SELECT procq.cancel_workflow(NULL);
SELECT procq.cancel_workflow(:w, NULL);
SELECT procq.cancel_workflow(999999);
SELECT procq.cancel_workflow(:w + 1);

-- without abort: the four todo jobs; running runs on
SELECT procq.cancel_workflow(:w) AS cancelled;
SELECT * FROM pg_temp.jobs(:w);
SELECT status FROM procq.jobs WHERE id IN (:other, :other_child) ORDER BY id;
SELECT count(*) AS fetchable FROM procq.fetch_jobs(10, tasks => '{cw-wait,cw-ready,cw-cleanup}');
-- again: nothing left to cancel
SELECT procq.cancel_workflow(:w) AS cancelled;
-- with abort: the running job is stopped; its worker's finish fails
SELECT procq.cancel_workflow(:w, abort => true) AS cancelled;
SELECT * FROM pg_temp.jobs(:w);
SELECT procq.finish_job(:running_id, 'succeeded');
SELECT procq.cancel_workflow(:w, abort => true) AS cancelled;
SELECT workflow_id = :w AS same, jobs, succeeded, failed, cancelled, state
FROM procq.workflows WHERE workflow_id = :w;

-- one set-based UPDATE: a wide workflow, every job cancelled once, the
-- lock queue of a job with a lock moved along (the next job of the lock,
-- in another workflow, becomes fetchable)
SELECT procq.defer('locked-head', lock => 'L') AS lw \gset
SELECT count(*) FROM procq.defer_jobs('fan', (SELECT array_agg('{}'::jsonb) FROM generate_series(1, 500)),
                                      depends_on => ARRAY[:lw]);
SELECT procq.defer('next-in-lock', lock => 'L') AS nl \gset
SELECT lock_blocked FROM procq.jobs WHERE id = :nl;
SELECT procq.cancel_workflow(:lw) AS cancelled;
SELECT status, count(*) FROM procq.jobs WHERE workflow_id = :lw GROUP BY status;
SELECT lock_blocked, status FROM procq.jobs WHERE id = :nl;

-- access: bob may not cancel alice's workflow (42501, nothing changes),
-- nor one that has one of alice's todo jobs; alice may
CREATE ROLE regress_cwf_alice;
CREATE ROLE regress_cwf_bob;
GRANT USAGE ON SCHEMA procq TO regress_cwf_alice, regress_cwf_bob;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_cwf_alice, regress_cwf_bob;
GRANT regress_cwf_bob TO regress_cwf_alice;
SET ROLE regress_cwf_bob;
SELECT procq.defer('bob-root') AS bw \gset
RESET ROLE;
SET ROLE regress_cwf_alice;
SELECT procq.defer('alice-root') AS aw \gset
-- alice (a member of bob) puts a job into bob's workflow
SELECT procq.defer('alice-in-bob', workflow_id => :bw) > 0 AS ok;
SET ROLE regress_cwf_bob;
SELECT procq.cancel_workflow(:aw);
SELECT procq.cancel_workflow(:bw);
RESET ROLE;
SELECT task, status FROM procq.jobs WHERE id >= :bw ORDER BY id;
SET ROLE regress_cwf_alice;
SELECT procq.cancel_workflow(:bw) AS cancelled;
SELECT procq.cancel_workflow(:aw) AS cancelled;
RESET ROLE;
SELECT task, status FROM procq.jobs WHERE id >= :bw ORDER BY id;

DROP OWNED BY regress_cwf_alice, regress_cwf_bob;
DROP ROLE regress_cwf_alice, regress_cwf_bob;
