-- depends_on_states.sql (rule 4): what defer does with depends_on,
-- according to each parent's status when the child is deferred.
--   succeeded     -> already satisfied (the child is fetchable at once)
--   failed        -> the child is created cancelled ('parent job N failed')
--   cancelled     -> the child is created cancelled ('... was cancelled')
--   todo / doing  -> pending
--   missing id    -> error naming it, nothing inserted
--   NULL element  -> error, nothing inserted
--   duplicates    -> counted once
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

CREATE TEMP VIEW counts AS
    SELECT (SELECT count(*) FROM procq.jobs) AS jobs,
           (SELECT count(*) FROM procq.job_dependencies) AS deps;

-- Parents in every status:
--   1 succeeded, 2 failed, 3 cancelled, 4 doing, 5 todo
SELECT procq.defer('will-succeed') AS id;
SELECT procq.defer('will-fail') AS id;
SELECT procq.defer('will-be-cancelled') AS id;
SELECT procq.defer('will-run') AS id;
SELECT procq.defer('will-wait') AS id;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'succeeded', '"ok"');
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(2, 'failed', error => 'boom');
SELECT procq.cancel_job(3);
SELECT id FROM procq.fetch_job();
SELECT id, status FROM procq.jobs ORDER BY id;

CREATE TEMP VIEW children AS
    SELECT id, task, status, pending_parents, cancelled_by, error,
           finished_at IS NOT NULL AS finished
      FROM procq.jobs WHERE id > 5 ORDER BY id;

-- Succeeded parent: satisfied, fetchable at once.
SELECT procq.defer('after-succeeded', queue => 'children', depends_on => '{1}') AS id;
TABLE children;
SELECT id, task FROM procq.fetch_job(ARRAY['children']);
SELECT procq.parent_results(6);

-- Failed parent: created cancelled, blaming it.
SELECT procq.defer('after-failed', queue => 'children', depends_on => '{2}') AS id;
-- Cancelled parent: created cancelled, blaming it.
SELECT procq.defer('after-cancelled', queue => 'children', depends_on => '{3}') AS id;
-- Doing and todo parents: pending.
SELECT procq.defer('after-doing', queue => 'children', depends_on => '{4}') AS id;
SELECT procq.defer('after-todo', queue => 'children', depends_on => '{5}') AS id;
-- A mix: cancelled, blamed on one failed or cancelled parent (the lowest id,
-- 2); every parent that has not succeeded is counted as pending.
SELECT procq.defer('after-mix', queue => 'children', depends_on => '{1,5,3,2}') AS id;
TABLE children;
SELECT id FROM procq.fetch_job(ARRAY['children']);
-- the dependency rows exist even for the children created cancelled
SELECT job_id, depends_on FROM procq.job_dependencies ORDER BY 1, 2;

-- A nonexistent parent: error naming it, nothing inserted.
TABLE counts;
SELECT procq.defer('orphan', depends_on => '{1,999}');
TABLE counts;
SELECT procq.defer('orphan', depends_on => ARRAY[-7]);
TABLE counts;

-- A NULL element: error, nothing inserted.
SELECT procq.defer('null-parent', depends_on => ARRAY[1, NULL]);
TABLE counts;

-- Duplicates count once.
SELECT procq.defer('dup', queue => 'children', depends_on => '{5,5,5}') AS id;
SELECT id, status, pending_parents FROM procq.jobs WHERE task = 'dup';
SELECT job_id, depends_on FROM procq.job_dependencies WHERE job_id = 12;
-- so one success releases it
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(5, 'succeeded');
SELECT id, status, pending_parents FROM procq.jobs WHERE id IN (9, 12) ORDER BY id;

-- An empty array means no parents.
SELECT procq.defer('no-parents', queue => 'children', depends_on => '{}') AS id;
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 13;
