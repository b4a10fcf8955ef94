-- bad_input.sql (rule 8): bad input is refused with a clear error (SQLSTATE,
-- message naming the problem, detail/hint where useful) and changes
-- nothing: after each error the jobs and dependency rows are as before.
-- Covers defer's arguments, finish_job's status and job, fetch_job's queue
-- list, malformed defer_workflow steps, and a DBA changing a succeeded job.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

-- What must not change: how many jobs and dependency rows, and each job's
-- status and attempts.
CREATE TEMP VIEW counts AS
    SELECT (SELECT count(*) FROM procq.jobs) AS jobs,
           (SELECT count(*) FROM procq.job_dependencies) AS deps,
           (SELECT string_agg(id || ':' || status || '/' || attempts, ' ' ORDER BY id)
              FROM procq.jobs) AS statuses;

-- Jobs 1 todo, 2 doing, 3 succeeded, 4 todo waiting for 1.
SELECT procq.defer('t1') AS id;
SELECT procq.defer('t2', priority => 1) AS id;
SELECT procq.defer('t3', priority => 2) AS id;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(3, 'succeeded');
SELECT id FROM procq.fetch_job();
SELECT procq.defer('t4', depends_on => '{1}') AS id;
TABLE counts;

------------------------------------------------------------------------
-- defer
SELECT procq.defer(NULL);
TABLE counts;
SELECT procq.defer('');
TABLE counts;
SELECT procq.defer('t', queue => NULL);
TABLE counts;
SELECT procq.defer('t', queue => '');
TABLE counts;
SELECT procq.defer('t', priority => NULL);
TABLE counts;
SELECT procq.defer('t', max_attempts => NULL);
TABLE counts;
SELECT procq.defer('t', max_attempts => 0);
TABLE counts;
SELECT procq.defer('t', max_attempts => -3);
TABLE counts;
SELECT procq.defer('t', lock => '');
TABLE counts;
SELECT procq.defer('t', queueing_lock => '');
TABLE counts;
-- a negative priority is fine (it just runs after priority 0)
SELECT procq.defer('low', priority => -100) AS id;
SELECT id, priority, status FROM procq.jobs WHERE id = 5;
DELETE FROM procq.jobs WHERE id = 5;

------------------------------------------------------------------------
-- finish_job
-- a status that does not exist
SELECT procq.finish_job(2, 'done');
TABLE counts;
-- statuses that do not end a job
SELECT procq.finish_job(2, 'todo');
TABLE counts;
SELECT procq.finish_job(2, 'doing');
TABLE counts;
-- a result is for succeeded jobs only
SELECT procq.finish_job(2, 'failed', result => '{"partial": true}');
TABLE counts;
-- jobs that are not doing: todo, succeeded, waiting
SELECT procq.finish_job(1, 'succeeded');
TABLE counts;
SELECT procq.finish_job(3, 'failed');
TABLE counts;
SELECT procq.finish_job(4, 'succeeded');
TABLE counts;
-- a job that does not exist
SELECT procq.finish_job(999, 'succeeded');
TABLE counts;
-- NULL job id or status
SELECT procq.finish_job(NULL, 'succeeded');
SELECT procq.finish_job(2, NULL);
TABLE counts;

------------------------------------------------------------------------
-- fetch_job: a NULL queue name in the list
SELECT id FROM procq.fetch_job(ARRAY['default', NULL]);
TABLE counts;

------------------------------------------------------------------------
-- Other calls on missing or NULL jobs.
SELECT procq.retry_job(999);
SELECT procq.heartbeat(999);
SELECT procq.cancel_job(NULL);
TABLE counts;

------------------------------------------------------------------------
-- A succeeded job cannot change status, even by a DBA's UPDATE.
UPDATE procq.jobs SET status = 'cancelled' WHERE id = 3;
UPDATE procq.jobs SET status = 'failed', error = 'oops' WHERE id = 3;
TABLE counts;

------------------------------------------------------------------------
-- defer_workflow: the steps are checked before anything is inserted, so
-- even valid steps before the bad one are not inserted.
SELECT * FROM procq.defer_workflow(NULL);
TABLE counts;
-- not an array
SELECT * FROM procq.defer_workflow('{"key": "a", "task": "t"}');
TABLE counts;
SELECT * FROM procq.defer_workflow('"a"');
TABLE counts;
-- a step that is not an object
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"}, "b"]');
TABLE counts;
-- key missing, not a string, empty
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"}, {"task": "t"}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": 1, "task": "t"}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "", "task": "t"}]');
TABLE counts;
-- task missing, not a string, empty
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"}, {"key": "b"}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": ["t"]}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": ""}]');
TABLE counts;
-- an unknown field (a typo must not drop a dependency silently)
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"},
                                     {"key": "b", "task": "t", "depend_on": ["a"]}]');
TABLE counts;
-- a duplicate key
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"}, {"key": "b", "task": "t"},
                                     {"key": "a", "task": "t2"}]');
TABLE counts;
-- depends_on naming a key no step has
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"},
                                     {"key": "b", "task": "t", "depends_on": ["c"]}]');
TABLE counts;
-- depends_on naming a job that does not exist
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"},
                                     {"key": "b", "task": "t", "depends_on": ["a", 999]}]');
TABLE counts;
-- cycles: two steps, three steps behind a valid one, and a step on itself
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t", "depends_on": ["b"]},
                                     {"key": "b", "task": "t", "depends_on": ["a"]}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "ok", "task": "t"},
                                     {"key": "x", "task": "t", "depends_on": ["ok", "z"]},
                                     {"key": "y", "task": "t", "depends_on": ["x"]},
                                     {"key": "z", "task": "t", "depends_on": ["y"]}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t", "depends_on": ["a"]}]');
TABLE counts;
-- wrong types
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t", "priority": "high"}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t", "priority": 1.5}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t", "priority": 3000000000}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"},
                                     {"key": "b", "task": "t", "depends_on": "a"}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"},
                                     {"key": "b", "task": "t", "depends_on": [{"key": "a"}]}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t", "queue": 5}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t", "scheduled_at": "soonish"}]');
TABLE counts;
-- values defer refuses too
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"},
                                     {"key": "b", "task": "t", "max_attempts": 0}]');
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t", "queue": ""}]');
TABLE counts;
-- a queueing_lock already held by a todo job: the whole workflow is refused
SELECT procq.defer('holder', queueing_lock => 'only-one') AS id;
TABLE counts;
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t"},
                                     {"key": "b", "task": "t", "queueing_lock": "only-one"}]');
TABLE counts;
-- an empty array is fine and inserts nothing
SELECT * FROM procq.defer_workflow('[]');
TABLE counts;
