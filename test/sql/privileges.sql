-- privileges.sql: nothing is granted to PUBLIC.  A role without grants
-- cannot use procq; with USAGE on the schema and EXECUTE on the functions
-- it can use the whole API, although it has no privileges on the tables:
-- it still cannot read or change procq.jobs directly.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
-- a leftover of an interrupted earlier run
DROP ROLE IF EXISTS regress_procq_app;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

CREATE ROLE regress_procq_app;

-- Without any grant: no access to the schema at all.
SET ROLE regress_procq_app;
SELECT procq.defer('t');
SELECT id FROM procq.fetch_job();
RESET ROLE;

-- USAGE on the schema alone is not enough to run the functions.
GRANT USAGE ON SCHEMA procq TO regress_procq_app;
SET ROLE regress_procq_app;
SELECT procq.defer('t');
RESET ROLE;
SELECT count(*) AS jobs FROM procq.jobs;

-- With EXECUTE on the functions, the API works ...
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_procq_app;
SET ROLE regress_procq_app;
SELECT current_user;
SELECT procq.defer('parent', max_attempts => 2) AS id;
SELECT procq.defer('child', depends_on => ARRAY[1]) AS id;
SELECT job_id FROM procq.defer_workflow('[{"key": "a", "task": "wf-a"},
                                         {"key": "b", "task": "wf-b", "depends_on": ["a", 2]}]');
SELECT id, task, status, attempts, worker FROM procq.fetch_job(worker => 'app-1');
SELECT procq.heartbeat(1) > now() AS lease_extended;
SELECT procq.finish_job(1, 'failed', error => 'transient');
SELECT id, task, attempts FROM procq.fetch_job(worker => 'app-1');
SELECT procq.finish_job(1, 'succeeded', '{"ok": true}');
SELECT id, task FROM procq.fetch_job(worker => 'app-2');
SELECT procq.parent_results(2);
SELECT procq.finish_job(2, 'failed', error => 'bad data');
SELECT procq.retry_job(2);
SELECT procq.cancel_job(3);
SELECT procq.recover_stalled();
-- ... but the tables stay out of reach.
SELECT * FROM procq.jobs;
SELECT count(*) FROM procq.job_dependencies;
UPDATE procq.jobs SET status = 'cancelled', finished_at = now() WHERE id = 2;
UPDATE procq.jobs SET priority = 100;
DELETE FROM procq.jobs WHERE id = 2;
INSERT INTO procq.jobs (task) VALUES ('sneaky');
DELETE FROM procq.job_dependencies;
SELECT nextval('procq.jobs_id_seq');
RESET ROLE;

-- What the role did through the API, seen by the superuser.
SELECT id, task, status, attempts, worker, pending_parents, cancelled_by, error, result
  FROM procq.jobs ORDER BY id;
SELECT job_id, depends_on FROM procq.job_dependencies ORDER BY 1, 2;

-- Clean up, so that the file can run again.
DROP OWNED BY regress_procq_app;
DROP ROLE regress_procq_app;
SELECT count(*) AS roles_left FROM pg_roles WHERE rolname = 'regress_procq_app';
