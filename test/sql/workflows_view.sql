-- workflows_view.sql: procq.workflows, one row per workflow (issue 9).
--  - Job counts per status; state running while a job is todo or doing,
--    else succeeded when every job succeeded or was skipped (a job
--    cancelled because its run_after condition could not hold: a
--    'failure' step whose parents all succeeded), else failed; a job
--    cancelled through a skipped one counts against success; created_at the
--    earliest job's, finished_at the latest's (NULL while running); task
--    the first job's.
--  - Access: the view reads procq.jobs with its owner's rights, so it
--    shows a role only the workflows whose first job it may act on
--    (pg_has_role(deferred_by, 'USAGE')); a role that may read procq.jobs
--    (monitoring) sees them all.  A security barrier: a leaky function in
--    the caller's WHERE clause sees no other role's rows.
--  - Cost: a query for one workflow_id reads one range of jobs_workflow_idx
--    (the plan shape, after ANALYZE on a table of many workflows).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_wfv_alice, regress_wfv_bob, regress_wfv_worker, regress_wfv_monitor;
RESET client_min_messages;
\pset null '(null)'
\set VERBOSITY default
SET procq.retry_delay = 0;

-- Fetches a ready job of task t and ends it with st (doing: leaves it running).
CREATE FUNCTION pg_temp.fetch_finish(t text, st procq.job_status) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    j procq.jobs;
BEGIN
    SELECT * INTO j FROM procq.fetch_job(tasks => ARRAY[t]);
    IF j.id IS NULL THEN RAISE 'no % job is ready', t; END IF;
    IF st <> 'doing' THEN
        PERFORM procq.finish_job(j.id, st, error => CASE WHEN st = 'failed' THEN 'boom' END);
    END IF;
    RETURN j.id;
END $$;

CREATE VIEW pg_temp.wf AS
    SELECT workflow_id, task, jobs, todo, doing, succeeded, failed, cancelled, state,
           created_at IS NOT NULL AS has_created, finished_at IS NOT NULL AS has_finished,
           finished_at >= created_at AS finished_after_created, skipped
    FROM procq.workflows;

-- workflow 1: a -> b -> c, all succeed
SELECT job_id AS w1 FROM procq.defer_workflow('[
    {"key": "a", "task": "ok-a"}, {"key": "b", "task": "ok-b", "depends_on": ["a"]},
    {"key": "c", "task": "ok-c", "depends_on": ["b"]}]') WHERE key = 'a' \gset
SELECT * FROM pg_temp.wf WHERE workflow_id = :w1;
SELECT pg_temp.fetch_finish('ok-a', 'succeeded') = :w1 AS first;
SELECT * FROM pg_temp.wf WHERE workflow_id = :w1;
SELECT pg_temp.fetch_finish('ok-b', 'doing') > :w1 AS second_runs;
SELECT * FROM pg_temp.wf WHERE workflow_id = :w1;
SELECT procq.finish_job(:w1 + 1, 'succeeded');
SELECT pg_temp.fetch_finish('ok-c', 'succeeded') > :w1 AS third;
SELECT * FROM pg_temp.wf WHERE workflow_id = :w1;
SELECT finished_at = (SELECT max(finished_at) FROM procq.jobs WHERE workflow_id = :w1) AS latest,
       created_at = (SELECT min(created_at) FROM procq.jobs WHERE workflow_id = :w1) AS earliest
FROM procq.workflows WHERE workflow_id = :w1;

-- workflow 2: x fails, y (child) is cancelled, z (independent) succeeds
SELECT job_id AS w2 FROM procq.defer_workflow('[
    {"key": "x", "task": "bad-x"}, {"key": "y", "task": "bad-y", "depends_on": ["x"]},
    {"key": "z", "task": "bad-z"}]') WHERE key = 'x' \gset
SELECT pg_temp.fetch_finish('bad-z', 'succeeded') > 0 AS z;
SELECT * FROM pg_temp.wf WHERE workflow_id = :w2;
SELECT pg_temp.fetch_finish('bad-x', 'failed') = :w2 AS x;
SELECT * FROM pg_temp.wf WHERE workflow_id = :w2;

-- workflow 3: one job, cancelled: failed (not every job succeeded)
SELECT procq.defer('lonely') AS w3 \gset
SELECT procq.cancel_job(:w3);
SELECT * FROM pg_temp.wf WHERE workflow_id = :w3;

-- workflow 4: an alert step ('failure') that was not needed: its parent
-- succeeded, so it is cancelled with 'all its parents succeeded' (skipped),
-- and the workflow succeeded
SELECT job_id AS w4 FROM procq.defer_workflow('[
    {"key": "s", "task": "skip-s"},
    {"key": "alert", "task": "skip-alert", "run_after": "failure", "depends_on": ["s"]}]')
    WHERE key = 's' \gset
SELECT pg_temp.fetch_finish('skip-s', 'succeeded') = :w4 AS s;
SELECT state, jobs, succeeded, cancelled FROM procq.workflows WHERE workflow_id = :w4;
SELECT skipped FROM procq.workflows WHERE workflow_id = :w4;

-- workflow 5: the same, but a 'success' child of the alert step, cancelled
-- through it (cancelled_by = the alert), counts against success: failed
SELECT job_id AS w5 FROM procq.defer_workflow('[
    {"key": "s", "task": "skip2-s"},
    {"key": "alert", "task": "skip2-alert", "run_after": "failure", "depends_on": ["s"]},
    {"key": "page", "task": "skip2-page", "depends_on": ["alert"]}]')
    WHERE key = 's' \gset
SELECT pg_temp.fetch_finish('skip2-s', 'succeeded') = :w5 AS s;
SELECT task, status, cancelled_by - :w5 AS cancelled_by, error FROM procq.jobs
WHERE workflow_id = :w5 ORDER BY id;
SELECT state, jobs, succeeded, cancelled FROM procq.workflows WHERE workflow_id = :w5;
SELECT skipped FROM procq.workflows WHERE workflow_id = :w5;

-- all rows, one per workflow
SELECT workflow_id - :w1 AS w, task, jobs, state FROM procq.workflows ORDER BY workflow_id;

-- Access with two roles: alice's workflow and bob's; worker is a member
-- of alice; monitor may read procq.jobs.
CREATE ROLE regress_wfv_alice;
CREATE ROLE regress_wfv_bob;
CREATE ROLE regress_wfv_worker;
CREATE ROLE regress_wfv_monitor;
GRANT regress_wfv_alice TO regress_wfv_worker;
GRANT USAGE ON SCHEMA procq TO regress_wfv_alice, regress_wfv_bob, regress_wfv_worker, regress_wfv_monitor;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_wfv_alice, regress_wfv_bob, regress_wfv_worker;
GRANT SELECT ON procq.workflows TO regress_wfv_alice, regress_wfv_bob, regress_wfv_worker;
GRANT SELECT ON ALL TABLES IN SCHEMA procq TO regress_wfv_monitor;
SET ROLE regress_wfv_alice;
SELECT procq.defer('alice-root') AS wa \gset
SELECT procq.defer('alice-child', depends_on => ARRAY[:wa]) > 0 AS ok;
SET ROLE regress_wfv_bob;
SELECT procq.defer('bob-root') AS wb \gset
RESET ROLE;
SET ROLE regress_wfv_alice;
SELECT task, jobs, state FROM procq.workflows ORDER BY workflow_id;
SET ROLE regress_wfv_bob;
SELECT task, jobs, state FROM procq.workflows ORDER BY workflow_id;
SELECT count(*) AS bob_sees_alices FROM procq.workflows WHERE workflow_id = :wa;
SET ROLE regress_wfv_worker;
SELECT task, jobs, state FROM procq.workflows ORDER BY workflow_id;
SET ROLE regress_wfv_monitor;
SELECT count(*) AS monitor_sees_all FROM procq.workflows;
RESET ROLE;
-- a leaky function in bob's WHERE clause does not see alice's rows
CREATE FUNCTION public.regress_wfv_leak(t text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN RAISE NOTICE 'saw %', t; RETURN true; END $$;
SET ROLE regress_wfv_bob;
SELECT task FROM procq.workflows WHERE public.regress_wfv_leak(task);
RESET ROLE;
DROP FUNCTION public.regress_wfv_leak(text);
-- once the first job is purged, the earliest remaining job decides
DELETE FROM procq.jobs WHERE id = :wa;
SET ROLE regress_wfv_alice;
SELECT workflow_id = :wa AS same_id, task, jobs FROM procq.workflows;
RESET ROLE;

-- The plan of one workflow's row: one range of jobs_workflow_idx (and the
-- primary key for its first job), not a scan of all jobs.
SELECT count(*) FROM procq.defer_jobs('bulk', (SELECT array_agg('{}'::jsonb) FROM generate_series(1, 3000)));
SELECT count(*) FROM procq.defer_jobs('bulk-child', '{"{}", "{}", "{}"}', depends_on => ARRAY[:w1]);
ANALYZE procq.jobs;
CREATE FUNCTION pg_temp.plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        -- the access filter names procq.jobs by its OID
        RETURN NEXT regexp_replace(line, '''\d+''::oid', '''<procq.jobs>''::oid');
    END LOOP;
END $$;
SELECT pg_temp.plan(format('SELECT * FROM procq.workflows WHERE workflow_id = %s', :w1));
SELECT jobs, succeeded, todo FROM procq.workflows WHERE workflow_id = :w1;

DROP OWNED BY regress_wfv_alice, regress_wfv_bob, regress_wfv_worker, regress_wfv_monitor;
DROP ROLE regress_wfv_alice, regress_wfv_bob, regress_wfv_worker, regress_wfv_monitor;
