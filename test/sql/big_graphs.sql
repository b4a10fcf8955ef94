-- big_graphs.sql (rule 6): cascades, requeues and releases work in one
-- call whatever the size or depth of the graph.
--  - A 10,000-job chain: failing its head cancels the other 9,999; retrying
--    the head requeues them all.
--  - A parent with 100,000 children releases them all when it succeeds.
--  - A parent with 10,000 children cancels them all when it fails.
-- max_stack_depth is left at its default: a recursive walk of the chain
-- would run out of stack.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

------------------------------------------------------------------------
-- A chain of 10,000 jobs in one defer_workflow call: step i depends on
-- step i-1.
SELECT count(*) AS steps, min(job_id) AS first_id, max(job_id) AS last_id
  FROM procq.defer_workflow((
    SELECT jsonb_agg(jsonb_build_object(
               'key', 'step-' || i,
               'task', 'chain',
               'depends_on', CASE WHEN i = 1 THEN '[]'::jsonb
                                  ELSE jsonb_build_array('step-' || (i - 1)) END)
             ORDER BY i)
      FROM generate_series(1, 10000) AS i));
-- every job but the head waits for the one before it
SELECT count(*) AS links,
       count(*) FILTER (WHERE depends_on = job_id - 1) AS links_to_previous
  FROM procq.job_dependencies;
SELECT status, pending_parents, count(*) FROM procq.jobs
 GROUP BY 1, 2 ORDER BY 1, 2;

-- Only the head is fetchable; it fails for good.
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'head failed');
-- all 9,999 others are cancelled, each through its own parent
SELECT status, count(*) FROM procq.jobs GROUP BY 1 ORDER BY 1;
SELECT count(*) AS cancelled_through_previous
  FROM procq.jobs WHERE status = 'cancelled' AND cancelled_by = id - 1;
SELECT id, cancelled_by, error FROM procq.jobs
 WHERE id IN (1, 2, 3, 10000) ORDER BY id;
SELECT id FROM procq.fetch_job();

-- Retrying the head requeues the whole chain in one call, each job
-- waiting for the one before it again.
SELECT procq.retry_job(1);
SELECT status, pending_parents, count(*) FROM procq.jobs
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS still_blamed FROM procq.jobs
 WHERE cancelled_by IS NOT NULL OR error IS NOT NULL;
SELECT id FROM procq.fetch_job();
SELECT id FROM procq.fetch_job();

------------------------------------------------------------------------
-- A parent with 100,000 children.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('parent') AS id;
WITH children AS MATERIALIZED (
    SELECT procq.defer('child', queue => 'children', depends_on => ARRAY[1]) AS id
      FROM generate_series(1, 100000))
SELECT count(*) AS children, min(id), max(id) FROM children;
SELECT status, pending_parents, count(*) FROM procq.jobs
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT id FROM procq.fetch_job(ARRAY['children']);

-- The parent succeeds: all 100,000 children are ready.
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'succeeded', '{"batch": 7}');
SELECT status, pending_parents, count(*) FROM procq.jobs
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT id FROM procq.fetch_job(ARRAY['children']);
SELECT procq.parent_results(100001);

------------------------------------------------------------------------
-- A parent with 10,000 children that fails cancels them all in one call.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('parent') AS id;
WITH children AS MATERIALIZED (
    SELECT procq.defer('child', queue => 'children', depends_on => ARRAY[1]) AS id
      FROM generate_series(1, 10000))
SELECT count(*) AS children FROM children;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed');
SELECT status, cancelled_by, error, count(*) FROM procq.jobs
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
