-- huge_input.sql (issue 8, bounds): a job with 100,000 parents, and args
-- and results of 10 MB, work through defer, defer_jobs, defer_workflow,
-- fetch, finish and parent_results; what is too big for one call fails
-- with a clear error before anything is locked or inserted.
--
-- Found with this file: defer_jobs of 65,536 jobs over 65,537 parents
-- counted its dependency rows in an int, which wrapped around, and the
-- server crashed (signal 11) copying them into a buffer sized by the
-- wrapped count.  A call may now insert at most 1,000,000 dependency rows
-- (54000).
--
-- Timings on the 2-core development machine (with other work beside it):
-- the defer with 100,000 parents 2-4 s, the workflow step with as many
-- 2-6 s, building the 10 MB document 1-2 s, each call with it 0.5-1.5 s.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

CREATE TEMP VIEW counts AS
    SELECT (SELECT count(*) FROM procq.jobs) AS jobs,
           (SELECT count(*) FROM procq.job_dependencies) AS deps,
           (SELECT count(*) FROM procq.jobs WHERE status = 'todo') AS todo;

------------------------------------------------------------------------
-- 100,000 parents: 99,999 that have succeeded (inserted directly, which is
-- quicker than running them) and one that has not.
INSERT INTO procq.jobs (task, status, attempts, started_at, finished_at)
    SELECT 'parent', 'succeeded', 1, now(), now() FROM generate_series(1, 99999);
SELECT procq.defer('last parent') AS last_parent \gset
SELECT procq.defer('child', depends_on => ARRAY(SELECT generate_series(1, 100000)::bigint))
    AS child \gset
SELECT pending_parents, status FROM procq.jobs WHERE id = :child;
TABLE counts;
-- the last parent releases it
SELECT id = :last_parent AS last_parent_first FROM procq.fetch_job();
SELECT procq.finish_job(:last_parent, 'succeeded', result => '{"last": true}');
SELECT id = :child AS child_ready, pending_parents FROM procq.fetch_job();
SELECT count(*) AS results, procq.parent_results(:child) -> :'last_parent' AS last_result
FROM jsonb_object_keys(procq.parent_results(:child));
SELECT procq.finish_job(:child, 'succeeded');

-- a workflow step naming the same 100,000 jobs by id
SELECT job_id > :child AS inserted FROM procq.defer_workflow(jsonb_build_array(
    jsonb_build_object('key', 'wide', 'task', 'wide child',
                       'depends_on', (SELECT jsonb_agg(i) FROM generate_series(1, 100000) i))));
SELECT pending_parents, status FROM procq.jobs WHERE task = 'wide child';
TABLE counts;

-- one id of the 100,000 does not exist: an error naming it, nothing inserted
SELECT procq.defer('child', depends_on => ARRAY(SELECT generate_series(2, 100000)::bigint) || 999999::bigint);
TABLE counts;

-- too many dependency rows for one call (before anything is locked); the
-- fan-out of 65,536 jobs over 65,537 parents is the one that crashed
SELECT procq.defer_jobs('t', array_fill('{}'::jsonb, ARRAY[65536]),
                        depends_on => ARRAY(SELECT generate_series(1, 65537)::bigint));
SELECT procq.defer_jobs('t', array_fill('{}'::jsonb, ARRAY[11]),
                        depends_on => ARRAY(SELECT generate_series(1, 100000)::bigint));
TABLE counts;

------------------------------------------------------------------------
-- 10 MB of args and results that do not compress (hex digits)
CREATE TEMP TABLE big AS
    SELECT jsonb_build_object('blob', string_agg(md5(i::text), '')) AS doc
    FROM generate_series(1, 327680) i;
SELECT octet_length(doc ->> 'blob') AS bytes FROM big;
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;

SELECT procq.defer('big', args => doc) AS big_job FROM big \gset
SELECT j.id = :big_job AS fetched, j.args = b.doc AS same_args FROM procq.fetch_job() j, big b;
SELECT procq.finish_job(:big_job, 'succeeded', result => doc) FROM big;
SELECT procq.defer('after big', depends_on => ARRAY[:big_job]) AS after_big \gset
SELECT procq.parent_results(:after_big) -> :'big_job' = doc AS same_result FROM big;

-- defer_jobs with one of them, defer_workflow with one in a step
SELECT count(*) FROM big, procq.defer_jobs('big', ARRAY[doc, '{}']);
SELECT count(*) FROM big, procq.defer_workflow(jsonb_build_array(
    jsonb_build_object('key', 'a', 'task', 'big', 'args', doc),
    jsonb_build_object('key', 'b', 'task', 'big', 'depends_on', jsonb_build_array('a'))));
SELECT count(*), bool_and(args = doc) AS same_args
FROM procq.jobs, big WHERE task = 'big' AND id <> :big_job AND args <> '{}';
SELECT count(*) FROM procq.jobs WHERE task = 'big' AND args = '{}';

-- fetch_jobs and finish_jobs with results of 10 MB
SELECT count(*) FROM procq.fetch_jobs(2, tasks => ARRAY['big']);
SELECT count(*) FROM big, procq.finish_jobs(
    ARRAY(SELECT id FROM procq.jobs WHERE status = 'doing' ORDER BY id),
    'succeeded', results => ARRAY[doc, NULL]);
SELECT count(*), bool_and(result = doc) AS same_results
FROM procq.jobs, big WHERE status = 'succeeded' AND id <> :big_job AND result IS NOT NULL;
