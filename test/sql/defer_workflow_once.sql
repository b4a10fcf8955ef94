-- defer_workflow_once.sql: procq.defer_workflow_once(tick, steps,
-- workflow_id) (issue 10, periodic workflows with pg_cron).
--  - The first call for a tick defers the steps as defer_workflow does and
--    returns the new workflow's id; procq.workflow_ticks records the tick,
--    the role and the workflow.
--  - Any later call of the same role for the same tick defers nothing and
--    returns NULL, also after the tick's jobs have all finished (where a
--    queueing_lock would no longer hold), and whatever steps it passes.
--  - Another role's tick of the same name is its own.
--  - A call that fails records no tick: the tick can be deferred again.
--  - Bad input (NULL, empty or long tick, steps that are not a non-empty
--    array, a bad step, a workflow_id that names no workflow) is an error
--    and changes nothing; a role without EXECUTE gets 42501.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_dwo_alice, regress_dwo_bob, regress_dwo_eve;
RESET client_min_messages;
\pset null '(null)'
\set VERBOSITY default

CREATE ROLE regress_dwo_alice;
CREATE ROLE regress_dwo_bob;
CREATE ROLE regress_dwo_eve;
GRANT USAGE ON SCHEMA procq TO regress_dwo_alice, regress_dwo_bob, regress_dwo_eve;
GRANT EXECUTE ON FUNCTION procq.defer_workflow_once, procq.get_job,
    procq.fetch_job, procq.finish_job TO regress_dwo_alice, regress_dwo_bob;

CREATE FUNCTION pg_temp.state() RETURNS TABLE (jobs bigint, workflows bigint, ticks bigint)
LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM procq.jobs),
           (SELECT count(DISTINCT workflow_id) FROM procq.jobs),
           (SELECT count(*) FROM procq.workflow_ticks)
$$;

\set steps '[{"key": "extract", "task": "nightly-extract"}, {"key": "load", "task": "nightly-load", "depends_on": ["extract"]}]'

-- the first call defers the workflow and returns its id
SET ROLE regress_dwo_alice;
SELECT procq.defer_workflow_once('nightly:2026-12-01', :'steps') AS workflow_id;
RESET ROLE;
SELECT id, task, step_key, workflow_id, deferred_by, status FROM procq.jobs ORDER BY id;
SELECT deferred_by, tick, workflow_id, deferred_at <= now() AS deferred_before_now
FROM procq.workflow_ticks;

-- the same tick again: nothing, NULL, also with other steps
SET ROLE regress_dwo_alice;
SELECT procq.defer_workflow_once('nightly:2026-12-01', :'steps') AS workflow_id;
SELECT procq.defer_workflow_once('nightly:2026-12-01', '[{"key": "x", "task": "other"}]') AS workflow_id;
RESET ROLE;
SELECT * FROM pg_temp.state();

-- the workflow runs to its end; the tick still defers nothing (a
-- queueing_lock would hold only while a job is todo)
SET ROLE regress_dwo_alice;
SELECT procq.finish_job(id, 'succeeded', attempt => attempts) FROM procq.fetch_job();
SELECT procq.finish_job(id, 'succeeded', attempt => attempts) FROM procq.fetch_job();
SELECT procq.defer_workflow_once('nightly:2026-12-01', :'steps') AS workflow_id;
RESET ROLE;
SELECT * FROM pg_temp.state();

-- the next tick defers again
SET ROLE regress_dwo_alice;
SELECT procq.defer_workflow_once('nightly:2026-12-02', :'steps') AS workflow_id;
RESET ROLE;
SELECT * FROM pg_temp.state();

-- another role's tick of the same name is its own: bob defers too, and
-- alice's tick stays deferred for alice
SET ROLE regress_dwo_bob;
SELECT procq.defer_workflow_once('nightly:2026-12-01', :'steps') AS workflow_id;
SELECT procq.defer_workflow_once('nightly:2026-12-01', :'steps') AS workflow_id;
RESET ROLE;
SELECT deferred_by, tick, workflow_id FROM procq.workflow_ticks ORDER BY deferred_by::text, tick;
SELECT DISTINCT workflow_id, deferred_by FROM procq.jobs ORDER BY workflow_id;

-- into an existing workflow (workflow_id): the tick returns that workflow
SELECT procq.defer_workflow_once('extra:1', '[{"key": "more", "task": "more"}]', workflow_id => 1) AS workflow_id;
SELECT procq.defer_workflow_once('extra:1', '[{"key": "more", "task": "more"}]', workflow_id => 1) AS workflow_id;
SELECT id, step_key, workflow_id FROM procq.jobs WHERE task = 'more';

-- a call that fails records no tick: the steps are rolled back with it,
-- and the tick can be deferred later
SELECT * FROM pg_temp.state();
SELECT procq.defer_workflow_once('broken:1', '[{"key": "a", "task": "t", "depends_on": ["nope"]}]');
SELECT procq.defer_workflow_once('broken:1', '[{"key": "a", "task": "t", "depends_on": [999999]}]');
SELECT * FROM pg_temp.state();
SELECT procq.defer_workflow_once('broken:1', '[{"key": "a", "task": "t"}]') IS NOT NULL AS deferred;

-- in a transaction that rolls back, the tick goes too
BEGIN;
SELECT procq.defer_workflow_once('rolled-back:1', '[{"key": "a", "task": "t"}]') IS NOT NULL AS deferred;
ROLLBACK;
SELECT count(*) AS ticks FROM procq.workflow_ticks WHERE tick = 'rolled-back:1';
SELECT procq.defer_workflow_once('rolled-back:1', '[{"key": "a", "task": "t"}]') IS NOT NULL AS deferred;

-- a tick skipped by hand (a DBA inserts the row) defers nothing
INSERT INTO procq.workflow_ticks (deferred_by, tick) VALUES ('regress_dwo_alice', 'nightly:2026-12-03');
SET ROLE regress_dwo_alice;
SELECT procq.defer_workflow_once('nightly:2026-12-03', :'steps') AS workflow_id;
RESET ROLE;

-- bad input: an error, and nothing changes
SELECT * FROM pg_temp.state();
SELECT procq.defer_workflow_once(NULL, :'steps');
SELECT procq.defer_workflow_once('t:1', NULL);
SELECT procq.defer_workflow_once('', :'steps');
SELECT procq.defer_workflow_once(repeat('x', 256), :'steps');
SELECT procq.defer_workflow_once('t:1', '[]');
SELECT procq.defer_workflow_once('t:1', '{"key": "a", "task": "t"}');
SELECT procq.defer_workflow_once('t:1', '"nightly"');
SELECT procq.defer_workflow_once('t:1', '[{"key": "a"}]');
SELECT procq.defer_workflow_once('t:1', '[{"key": "a", "task": "t"}]', workflow_id => 0);
SELECT procq.defer_workflow_once('t:1', '[{"key": "a", "task": "t"}]', workflow_id => 424242);
\set VERBOSITY terse
INSERT INTO procq.workflow_ticks (deferred_by, tick) VALUES ('regress_dwo_alice', '');
\set VERBOSITY default
SELECT * FROM pg_temp.state();
-- 255 characters are fine
SELECT procq.defer_workflow_once(repeat('é', 255), '[{"key": "a", "task": "t"}]') IS NOT NULL AS deferred;

-- a role may not put its tick into another role's workflow
SET ROLE regress_dwo_bob;
SELECT procq.defer_workflow_once('into-alice:1', '[{"key": "a", "task": "t"}]', workflow_id => 1);
RESET ROLE;
SELECT count(*) AS ticks FROM procq.workflow_ticks WHERE tick = 'into-alice:1';

-- a role without EXECUTE
SET ROLE regress_dwo_eve;
SELECT procq.defer_workflow_once('t:1', :'steps');
SELECT * FROM procq.workflow_ticks;
RESET ROLE;

DROP EXTENSION procq CASCADE;
DROP OWNED BY regress_dwo_alice, regress_dwo_bob, regress_dwo_eve;
DROP ROLE regress_dwo_alice, regress_dwo_bob, regress_dwo_eve;
