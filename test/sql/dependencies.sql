-- dependencies.sql (rule 1): a child runs only after every parent has
-- succeeded.  It waits while a parent is todo, doing, or back in todo for
-- another attempt; pending_parents counts the parents that have not
-- succeeded, and the child becomes fetchable when it reaches 0.
-- parent_results hands the parents' results to the child.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

-- Children go to queue 'children' so that fetching from that queue alone
-- shows whether a child is fetchable.

-- One parent with two attempts, one child.
SELECT procq.defer('parent', max_attempts => 2) AS id;
SELECT procq.defer('child', queue => 'children', depends_on => ARRAY[1]) AS id;
SELECT job_id, depends_on FROM procq.job_dependencies;
-- parent todo: the child waits
SELECT id, status, pending_parents FROM procq.jobs ORDER BY id;
SELECT id FROM procq.fetch_job(ARRAY['children']);
-- parent doing: the child waits
SELECT id, task FROM procq.fetch_job(ARRAY['default']);
SELECT id, status, pending_parents FROM procq.jobs ORDER BY id;
SELECT id FROM procq.fetch_job(ARRAY['children']);
-- first attempt failed, parent back in todo for its second: the child waits
SELECT procq.finish_job(1, 'failed', error => 'try again');
SELECT id, status, attempts, pending_parents FROM procq.jobs ORDER BY id;
SELECT id FROM procq.fetch_job(ARRAY['children']);
-- second attempt, doing: the child waits
SELECT id, task, attempts FROM procq.fetch_job(ARRAY['default']);
SELECT id FROM procq.fetch_job(ARRAY['children']);
-- parent succeeded: the child is released and fetchable
SELECT procq.finish_job(1, 'succeeded', '{"rows": 42}');
SELECT id, status, pending_parents FROM procq.jobs ORDER BY id;
SELECT id, task FROM procq.fetch_job(ARRAY['children']);
-- the child sees its parent's result, keyed by parent id
SELECT procq.parent_results(2);

-- Fan-in: a child of three parents is released only after the last one.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p1') AS id;
SELECT procq.defer('p2') AS id;
SELECT procq.defer('p3') AS id;
SELECT procq.defer('join', queue => 'children', depends_on => ARRAY[3, 1, 2]) AS id;
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 4;
-- before any parent succeeded, parent_results has a null per parent
SELECT procq.parent_results(4);
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(1, 'succeeded', '"one"');
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 4;
SELECT id FROM procq.fetch_job(ARRAY['children']);
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(2, 'succeeded', '"two"');
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 4;
SELECT id FROM procq.fetch_job(ARRAY['children']);
-- the last parent is doing: still waiting
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 4;
SELECT id FROM procq.fetch_job(ARRAY['children']);
SELECT procq.finish_job(3, 'succeeded');
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 4;
SELECT id, task FROM procq.fetch_job(ARRAY['children']);
-- a parent that succeeded without a result shows as null
SELECT procq.parent_results(4);

-- Fan-out: one parent's success releases all of its children at once.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('root') AS id;
SELECT procq.defer('leaf', queue => 'children', depends_on => ARRAY[1])
  FROM generate_series(1, 3);
SELECT id, status, pending_parents FROM procq.jobs ORDER BY id;
SELECT id FROM procq.fetch_job(ARRAY['children']);
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(1, 'succeeded', '{"n": 3}');
SELECT id, status, pending_parents FROM procq.jobs ORDER BY id;
SELECT id FROM procq.fetch_job(ARRAY['children']);
SELECT id FROM procq.fetch_job(ARRAY['children']);
SELECT id FROM procq.fetch_job(ARRAY['children']);
SELECT id, procq.parent_results(id) FROM procq.jobs WHERE id > 1 ORDER BY id;

-- Diamond: a -> (b, c) -> d.  pending_parents at each step.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('a') AS id;
SELECT procq.defer('b', depends_on => ARRAY[1]) AS id;
SELECT procq.defer('c', depends_on => ARRAY[1]) AS id;
SELECT procq.defer('d', depends_on => ARRAY[2, 3]) AS id;
SELECT id, task, status, pending_parents FROM procq.jobs ORDER BY id;
SELECT id, task FROM procq.fetch_job();
-- nothing else is ready while a runs
SELECT id, task FROM procq.fetch_job();
SELECT procq.finish_job(1, 'succeeded', '"A"');
SELECT id, task, status, pending_parents FROM procq.jobs ORDER BY id;
SELECT id, task FROM procq.fetch_job();
SELECT id, task FROM procq.fetch_job();
-- d waits for both b and c
SELECT id, task FROM procq.fetch_job();
SELECT procq.finish_job(3, 'succeeded', '"C"');
SELECT id, task, status, pending_parents FROM procq.jobs ORDER BY id;
SELECT id, task FROM procq.fetch_job();
SELECT procq.finish_job(2, 'succeeded', '"B"');
SELECT id, task, status, pending_parents FROM procq.jobs ORDER BY id;
SELECT id, task FROM procq.fetch_job();
SELECT procq.parent_results(4);
SELECT procq.finish_job(4, 'succeeded');
SELECT id, task, status, pending_parents FROM procq.jobs ORDER BY id;

-- parent_results of a job without parents, and of a missing job.
SELECT procq.parent_results(1);
SELECT procq.parent_results(999);
