-- hostile_search_path.sql: look-alike objects planted by a non-superuser in
-- every schema procq touches, and a search_path that puts them first,
-- change nothing procq's functions and triggers do.
--
--   - every function of the extension pins search_path, ending in pg_temp
--     (but the two called for every row written, which run no SQL and look
--     nothing up by name: see README, Design);
--   - the role cannot create anything in schema procq, nor take it over;
--   - test/hostile/scenario.sql (every API function, the triggers through
--     plain UPDATE and DELETE and a superuser's updates, procq.purge) runs
--     plainly, then again after the role planted look-alikes of what
--     procq's SQL uses in public and evil (test/hostile/lookalikes.sql) and
--     temporary tables and views named like procq's in pg_temp, with
--     search_path = evil, public, pg_temp, procq, pg_catalog: the same
--     output, the same jobs, and no look-alike was called.
-- The background workers and procq.retention: test/t/042_hostile_search_path_workers.pl.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
DROP SCHEMA IF EXISTS evil CASCADE;
DO $$ BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_procq_mallory') THEN
        EXECUTE 'DROP OWNED BY regress_procq_mallory CASCADE';
        EXECUTE 'DROP ROLE regress_procq_mallory';
    END IF;
END $$;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

CREATE ROLE regress_procq_mallory;
GRANT USAGE ON SCHEMA procq TO regress_procq_mallory;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_procq_mallory;
GRANT SELECT, UPDATE, DELETE ON procq.jobs, procq.job_dependencies TO regress_procq_mallory;
GRANT CREATE ON SCHEMA public TO regress_procq_mallory;
CREATE SCHEMA evil AUTHORIZATION regress_procq_mallory;

-- Each function of the extension pins search_path, with pg_temp last.
SELECT p.proname AS function, p.proconfig
  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'procq')
   AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)
 ORDER BY 1::text;
-- (the exceptions run no SQL: their C code looks nothing up by name)

-- Schema procq: the role can create nothing in it, nor take it over.
SET ROLE regress_procq_mallory;
CREATE TABLE procq.lookalike (id bigint);
CREATE FUNCTION procq.now() RETURNS timestamptz LANGUAGE sql AS 'SELECT pg_catalog.now()';
CREATE VIEW procq.lookalike AS SELECT 1 AS x;
CREATE TYPE procq.lookalike AS ENUM ('todo');
CREATE SCHEMA procq;
ALTER SCHEMA procq RENAME TO procq_old;
ALTER SCHEMA procq OWNER TO regress_procq_mallory;
DROP SCHEMA procq CASCADE;
ALTER TABLE procq.jobs RENAME TO jobs_old;
DROP TABLE procq.job_dependencies;
CREATE TRIGGER lookalike AFTER UPDATE ON procq.jobs EXECUTE FUNCTION procq.jobs_status_changed();
RESET ROLE;

-- The plain run.
\i test/hostile/scenario.sql
CREATE TEMP TABLE plain_jobs AS
SELECT id, queue, task, args, status, priority,
       -- the literal ones (a retry's is the time of the retry)
       CASE WHEN scheduled_at NOT BETWEEN '2001-01-01' AND '2998-01-01' THEN scheduled_at END AS scheduled,
       attempts, max_attempts,
       lock, queueing_lock, result, error, started_at IS NULL AS not_started,
       finished_at IS NULL AS not_finished, worker, deferred_by, pending_parents,
       lock_blocked, delayed, lease_expires_at IS NULL AS no_lease, cancelled_by
  FROM procq.jobs;
CREATE TEMP TABLE plain_deps AS SELECT * FROM procq.job_dependencies;
CREATE TEMP TABLE plain_handlers AS SELECT task, kind, command, timeout, registered_by FROM procq.handlers;
SELECT count(*) AS jobs_left FROM plain_jobs;
TRUNCATE procq.jobs, procq.job_dependencies, procq.handlers RESTART IDENTITY;

-- The role plants its look-alikes ...
SET ROLE regress_procq_mallory;
\set ECHO none
\i test/hostile/lookalikes.sql
\set ECHO all
CREATE TEMP TABLE jobs (id bigint, status text);
CREATE TEMP TABLE job_dependencies (job_id bigint, depends_on bigint);
CREATE TEMP VIEW handlers AS SELECT evil.logged('pg_temp.handlers') AS x;
CREATE TEMP VIEW worker_status AS SELECT evil.logged('pg_temp.worker_status') AS x;
CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $$ BEGIN PERFORM evil.logged('pg_temp.now()'); RETURN pg_catalog.now(); END $$;
RESET ROLE;
SET search_path = evil, public, pg_temp, procq, pg_catalog;
-- ... which are live: a statement of the session's own calls them.
SELECT 1 = 1 AS lookalike_called;
SELECT what FROM evil.calls ORDER BY 1;
DELETE FROM evil.calls WHERE true;
SELECT pg_catalog.setval('evil.calls_seq', 1, false);

-- The hostile run: the same output as the plain one ...
\i test/hostile/scenario.sql

-- ... the same jobs, dependencies and handlers ...
SET search_path = pg_catalog, pg_temp;
SELECT 'only plain' AS side, * FROM (TABLE plain_jobs EXCEPT
  SELECT id, queue, task, args, status, priority,
       CASE WHEN scheduled_at NOT BETWEEN '2001-01-01' AND '2998-01-01' THEN scheduled_at END,
       attempts, max_attempts,
       lock, queueing_lock, result, error, started_at IS NULL, finished_at IS NULL,
       worker, deferred_by, pending_parents, lock_blocked, delayed,
       lease_expires_at IS NULL, cancelled_by FROM procq.jobs) o
UNION ALL
SELECT 'only hostile', * FROM (
  SELECT id, queue, task, args, status, priority,
       CASE WHEN scheduled_at NOT BETWEEN '2001-01-01' AND '2998-01-01' THEN scheduled_at END,
       attempts, max_attempts,
       lock, queueing_lock, result, error, started_at IS NULL, finished_at IS NULL,
       worker, deferred_by, pending_parents, lock_blocked, delayed,
       lease_expires_at IS NULL, cancelled_by FROM procq.jobs
  EXCEPT TABLE plain_jobs) h;
(TABLE plain_deps EXCEPT TABLE procq.job_dependencies)
  UNION ALL (TABLE procq.job_dependencies EXCEPT TABLE plain_deps);
(TABLE plain_handlers EXCEPT SELECT task, kind, command, timeout, registered_by FROM procq.handlers)
  UNION ALL (SELECT task, kind, command, timeout, registered_by FROM procq.handlers EXCEPT TABLE plain_handlers);
SELECT id, task, status, attempts, pending_parents, lock_blocked, delayed, cancelled_by, error
  FROM procq.jobs ORDER BY id;

-- ... and no look-alike was called.
SELECT what, by_role, count(*) FROM evil.calls GROUP BY 1, 2 ORDER BY 1, 2;
SELECT last_value, is_called FROM evil.calls_seq;

-- Clean up, so that later files and runs see none of it.
RESET search_path;
SET client_min_messages = warning;
DROP OWNED BY regress_procq_mallory CASCADE;
DROP ROLE regress_procq_mallory;
DROP EXTENSION procq CASCADE;
RESET client_min_messages;
SELECT count(*) AS lookalikes_left FROM pg_proc WHERE pronamespace = 'public'::regnamespace
   AND proname IN ('now', 'make_interval', 'count', 'unnest');
