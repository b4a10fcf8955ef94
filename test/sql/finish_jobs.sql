-- finish_jobs.sql: procq.finish_jobs ends many doing jobs at once.
--  - each job as finish_job would end it: succeeded with its result (and
--    its children released), failed back to todo after the backoff while
--    attempts are left (its children keep waiting), failed for good
--    cancelling its descendants, cancelled; lock queues move along.
--  - returns each job and the status it ended in, in the order of job_ids
--    ('todo' for a failed job that will be retried).
--  - results[i] and errors[i] go to job_ids[i]; arrays of another length
--    than job_ids are 22023; a result with a status other than succeeded
--    is 22023, a status other than succeeded/failed/cancelled too.
--  - all or nothing: a job that is not doing is 55000, one that does not
--    exist P0002, a NULL id 22004, an id given twice 22023; then no job of
--    the batch changed.
--  - queueing locks: a failed job whose queueing_lock another todo job
--    holds (or an earlier job of the same batch that goes back to todo)
--    stays failed, as with finish_job.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

CREATE TEMP VIEW state AS
    SELECT id, task, status, attempts, pending_parents AS pending, lock_blocked AS blocked,
           result, error, cancelled_by,
           finished_at IS NOT NULL AS finished, lease_expires_at IS NOT NULL AS leased
      FROM procq.jobs ORDER BY id;

------------------------------------------------------------------------
-- Success: results by position, children released, lock queue moves on.
SELECT procq.defer('p1') AS id;                                         -- 1
SELECT procq.defer('p2', lock => 'L') AS id;                            -- 2
SELECT procq.defer('p3') AS id;                                         -- 3
SELECT procq.defer('child', depends_on => ARRAY[1, 3]) AS id;           -- 4
SELECT procq.defer('behind p2', lock => 'L') AS id;                     -- 5
SELECT id, task FROM procq.fetch_jobs(10);
SELECT * FROM procq.finish_jobs(ARRAY[3, 1, 2], 'succeeded',
    results => ARRAY['{"n": 3}', '{"n": 1}', NULL]::jsonb[]);
TABLE state;
SELECT procq.parent_results(4);
SELECT id, task FROM procq.fetch_jobs(10);

------------------------------------------------------------------------
-- Failure: retries while attempts are left (with the backoff), for good
-- after the last one, with descendants cancelled; errors by position.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('retry me', max_attempts => 3) AS id;                -- 1
SELECT procq.defer('last try') AS id;                                   -- 2
SELECT procq.defer('child of 2', depends_on => ARRAY[2]) AS id;         -- 3
SELECT procq.defer('grandchild', depends_on => ARRAY[3]) AS id;         -- 4
SELECT procq.defer('child of 1', depends_on => ARRAY[1]) AS id;         -- 5
SELECT id, task FROM procq.fetch_jobs(10);
SELECT * FROM procq.finish_jobs(ARRAY[1, 2], 'failed', errors => ARRAY['boom 1', 'boom 2']);
TABLE state;
-- with retry_delay 0 the retry is fetchable at once; with a delay it waits
SELECT id, attempts FROM procq.fetch_jobs(10);
SET procq.retry_delay = '10min';
SELECT * FROM procq.finish_jobs(ARRAY[1], 'failed');
-- the second attempt failed: 10 minutes doubled once
SELECT id, status, attempts, delayed,
       scheduled_at BETWEEN now() + interval '19 min' AND now() + interval '21 min' AS backoff_doubled
  FROM procq.jobs WHERE id = 1;
SELECT count(*) FROM procq.fetch_jobs(10);
RESET procq.retry_delay;
SET procq.retry_delay = 0;
-- a cancelled batch cancels descendants too
SELECT procq.defer('c1') AS id;                                         -- 6
SELECT procq.defer('child of c1', depends_on => ARRAY[6]) AS id;        -- 7
SELECT id FROM procq.fetch_jobs(10, tasks => ARRAY['c1']);
SELECT * FROM procq.finish_jobs(ARRAY[6], 'cancelled');
SELECT id, status, cancelled_by, error FROM procq.jobs WHERE id IN (6, 7) ORDER BY id;

------------------------------------------------------------------------
-- Queueing locks: only one job per value goes back to todo.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('q1', queueing_lock => 'Q', max_attempts => 2) AS id;   -- 1
SELECT id FROM procq.fetch_job();
SELECT procq.defer('q2', queueing_lock => 'Q', max_attempts => 2) AS id;   -- 2
SELECT id FROM procq.fetch_job();
SELECT procq.defer('q3', queueing_lock => 'Q') AS id;                      -- 3
SELECT procq.defer('r1', queueing_lock => 'R', max_attempts => 2) AS id;   -- 4
SELECT id FROM procq.fetch_jobs(10, tasks => ARRAY['r1']);
-- 1 and 2 share Q, and 3 waits with Q: both stay failed; 4 is retried
SELECT * FROM procq.finish_jobs(ARRAY[4, 2, 1], 'failed', errors => ARRAY['e4', 'e2', NULL]);
SELECT id, status, error FROM procq.jobs ORDER BY id;
-- without a holder, the first of the batch goes back to todo, the second
-- stays failed naming it
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('q1', queueing_lock => 'Q', max_attempts => 2) AS id;   -- 1
SELECT id FROM procq.fetch_job();
SELECT procq.defer('q2', queueing_lock => 'Q', max_attempts => 2) AS id;   -- 2
SELECT id FROM procq.fetch_job();
SELECT * FROM procq.finish_jobs(ARRAY[2, 1], 'failed');
SELECT id, status, error FROM procq.jobs ORDER BY id;

------------------------------------------------------------------------
-- Bad input: nothing changes.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT count(*) FROM procq.defer_jobs('t', array_fill('{}'::jsonb, ARRAY[4]));
SELECT id FROM procq.fetch_jobs(3);
CREATE TEMP VIEW counts AS
    SELECT string_agg(id || ':' || status, ' ' ORDER BY id) AS statuses FROM procq.jobs;
TABLE counts;
-- 4 is todo: 55000, and 1 and 2 stay doing
SELECT * FROM procq.finish_jobs(ARRAY[1, 2, 4], 'succeeded');
TABLE counts;
-- 99 does not exist: P0002
SELECT * FROM procq.finish_jobs(ARRAY[1, 99], 'succeeded');
-- NULL ids, an id twice, NULL arguments
SELECT * FROM procq.finish_jobs(ARRAY[1, NULL], 'succeeded');
SELECT * FROM procq.finish_jobs(ARRAY[1, 2, 1], 'succeeded');
SELECT * FROM procq.finish_jobs(NULL, 'succeeded');
SELECT * FROM procq.finish_jobs(ARRAY[1], NULL);
-- lengths
SELECT * FROM procq.finish_jobs(ARRAY[1, 2], 'succeeded', results => ARRAY['{}']::jsonb[]);
SELECT * FROM procq.finish_jobs(ARRAY[1, 2], 'failed', errors => ARRAY['a', 'b', 'c']);
-- statuses
SELECT * FROM procq.finish_jobs(ARRAY[1], 'todo');
SELECT * FROM procq.finish_jobs(ARRAY[1], 'doing');
SELECT * FROM procq.finish_jobs(ARRAY[1, 2], 'failed', results => ARRAY[NULL, '{}']::jsonb[]);
TABLE counts;
-- an empty batch is fine
SELECT * FROM procq.finish_jobs(ARRAY[]::bigint[], 'succeeded');
-- a job finished twice: the second batch is refused as a whole
SELECT * FROM procq.finish_jobs(ARRAY[1], 'succeeded');
SELECT * FROM procq.finish_jobs(ARRAY[2, 1], 'failed');
TABLE counts;
SELECT * FROM procq.finish_jobs(ARRAY[2, 3], 'failed', errors => ARRAY[NULL, 'e3']);
TABLE state;
