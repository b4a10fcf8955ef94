-- authz_grants.sql: the README's grant sets (section Privileges), given
-- as written there (roles prefixed regress_), and what each allows: a
-- producer defers, sees, waits for and cancels its own jobs and nothing
-- more; a worker (a member of the producer) works only its members' jobs;
-- only the administrator registers handlers; monitoring reads the tables
-- and procq.worker_status; the producer sees and cancels its own workflows
-- (procq.workflows, workflow_dot, parents, add_dependencies, cancel_workflow).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_app, regress_app_worker, regress_procq_admin,
    regress_monitoring, regress_other;
RESET client_min_messages;
\pset null '(null)'
CREATE ROLE regress_app;
CREATE ROLE regress_app_worker;
CREATE ROLE regress_procq_admin;
CREATE ROLE regress_monitoring;
CREATE ROLE regress_other;

-- producer: defers jobs, sees, waits for, cancels and retries its own jobs
-- and workflows
GRANT USAGE ON SCHEMA procq TO regress_app;
GRANT EXECUTE ON FUNCTION procq.defer, procq.defer_jobs, procq.defer_workflow,
    procq.add_dependencies, procq.get_job, procq.get_jobs, procq.wait_job,
    procq.parent_results, procq.parents, procq.cancel_job, procq.retry_job,
    procq.cancel_workflow, procq.workflow_dot, procq.job_history TO regress_app;
GRANT SELECT ON procq.workflows TO regress_app;        -- shows it its own workflows only

-- worker: fetches and finishes the jobs of the roles it is a member of
GRANT USAGE ON SCHEMA procq TO regress_app_worker;
GRANT EXECUTE ON FUNCTION procq.fetch_job, procq.fetch_jobs, procq.finish_job,
    procq.finish_jobs, procq.heartbeat, procq.parent_results, procq.parents,
    procq.get_job, procq.recover_stalled TO regress_app_worker;
GRANT regress_app TO regress_app_worker;             -- works app's jobs, and nobody else's

-- administrator: registers handlers for the background workers
GRANT USAGE ON SCHEMA procq TO regress_procq_admin;
GRANT EXECUTE ON FUNCTION procq.register_handler, procq.unregister_handler TO regress_procq_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON procq.handlers TO regress_procq_admin;

-- monitoring: read everything, change nothing
GRANT USAGE ON SCHEMA procq TO regress_monitoring;
GRANT SELECT ON ALL TABLES IN SCHEMA procq TO regress_monitoring;     -- and the views
GRANT EXECUTE ON FUNCTION procq.worker_status TO regress_monitoring;   -- the view calls it
GRANT SELECT ON procq.workflows TO regress_monitoring;                 -- (already in ALL TABLES)

-- another producer, with the same grants
GRANT USAGE ON SCHEMA procq TO regress_other;
GRANT EXECUTE ON FUNCTION procq.defer, procq.get_job, procq.cancel_job,
    procq.add_dependencies, procq.cancel_workflow, procq.workflow_dot, procq.parents TO regress_other;
GRANT SELECT ON procq.workflows TO regress_other;

------------------------------------------------------------------------
-- The producer: its own jobs, and nothing more.
SET ROLE regress_app;
SELECT procq.defer('report', '{"month": 11}') AS j1;
SELECT procq.defer('report', '{"month": 12}') AS j2;
SELECT procq.defer('later', depends_on => ARRAY[1]) AS j3;
SELECT count(*) FROM procq.defer_jobs('bulk', ARRAY['{}', '{}']::jsonb[]);
SELECT key, job_id FROM procq.defer_workflow('[{"key": "w", "task": "wf"}]');
SELECT id, task, status, args FROM procq.get_job(1);
SELECT id, status FROM procq.get_jobs(ARRAY[2, 1, 2, 999]);
SELECT (procq.wait_job(2, interval '0')).status AS not_done_yet;
SELECT procq.cancel_job(2);
SELECT (procq.wait_job(2, interval '10 seconds')).status AS ended;
SELECT procq.retry_job(2);
-- not a worker, not an administrator, no table
SELECT * FROM procq.fetch_job();
SELECT procq.finish_job(1, 'succeeded');
SELECT procq.heartbeat(1);
SELECT procq.register_handler('report', 'sql', 'SELECT 1');
SELECT count(*) FROM procq.jobs;
RESET ROLE;

-- Another producer sees none of it, and cannot touch it.
SET ROLE regress_other;
SELECT procq.defer('other') AS j7;
SELECT procq.get_job(1);
SELECT procq.cancel_job(1);
SELECT procq.defer('sneaky child', depends_on => ARRAY[1]);
RESET ROLE;

------------------------------------------------------------------------
-- The worker: works app's jobs (its own role's too), never other's.  As a
-- member of app it may also do what app may (defer).
SET ROLE regress_app_worker;
SELECT id, task, args FROM procq.fetch_job(worker => 'w1');
SELECT procq.heartbeat(1) > now() AS leased;
SELECT procq.finish_job(1, 'succeeded', '{"rows": 42}');
SELECT id, task FROM procq.fetch_jobs(10, worker => 'w1') ORDER BY id;
SELECT * FROM procq.finish_jobs(ARRAY[2, 3, 4, 5, 6], 'succeeded');
SELECT count(*) AS nothing_else FROM procq.fetch_jobs(10);
SELECT (procq.get_job(7)).status;
SELECT procq.finish_job(7, 'succeeded');
SELECT procq.register_handler('report', 'sql', 'SELECT 1');
SELECT procq.defer('x');
RESET ROLE;
SET ROLE regress_app;
SELECT procq.parent_results(3);
SELECT (procq.wait_job(3)).result IS NULL AS done_without_result;
RESET ROLE;

------------------------------------------------------------------------
-- The administrator registers handlers; nobody else does.
SET ROLE regress_procq_admin;
SELECT procq.register_handler('report', 'sql', 'SELECT $2');
SELECT task, registered_by FROM procq.handlers;
SELECT procq.defer('x');
SELECT procq.get_job(1);
RESET ROLE;

------------------------------------------------------------------------
-- Monitoring reads the tables and procq.worker_status, changes nothing.
SET ROLE regress_monitoring;
SELECT queue, status, count(*) FROM procq.jobs GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS workers FROM procq.worker_status;
SELECT count(*) AS handlers FROM procq.handlers;
UPDATE procq.jobs SET priority = 1;
SELECT procq.defer('x');
SELECT procq.cancel_job(7);
RESET ROLE;

------------------------------------------------------------------------
-- Workflows: the producer works its own through the new functions; the
-- other producer sees none of it and cannot touch it; monitoring sees all.
SET ROLE regress_app;
SELECT procq.defer('wa') AS wa \gset
SELECT procq.defer('wb', run_after => 'completion', depends_on => ARRAY[:wa]) AS wb \gset
SELECT procq.defer('wc') AS wc \gset
SELECT procq.add_dependencies(:wb, ARRAY[:wc]) AS added;
SELECT job_id, task, status, step_key FROM procq.parents(:wb);
SELECT workflow_id, task, jobs, todo, state FROM procq.workflows ORDER BY workflow_id;
SELECT procq.workflow_dot(:wa);
RESET ROLE;
SET ROLE regress_other;
SELECT workflow_id, task, jobs FROM procq.workflows ORDER BY workflow_id;
SELECT procq.cancel_workflow(:wa);
SELECT procq.workflow_dot(:wa);
SELECT * FROM procq.parents(:wb);
SELECT procq.add_dependencies(7, ARRAY[:wa]);
RESET ROLE;
SET ROLE regress_monitoring;
SELECT workflow_id, task, jobs, state FROM procq.workflows ORDER BY workflow_id;
SELECT procq.cancel_workflow(:wa);
RESET ROLE;
SET ROLE regress_app;
SELECT procq.cancel_workflow(:wa) AS cancelled;
RESET ROLE;

SELECT id, task, status, deferred_by, worker, result FROM procq.jobs ORDER BY id;

DROP OWNED BY regress_app, regress_app_worker, regress_procq_admin, regress_monitoring, regress_other;
DROP ROLE regress_app, regress_app_worker, regress_procq_admin, regress_monitoring, regress_other;
