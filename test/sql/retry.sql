-- retry.sql: attempts and retries.
--  - finish_job(failed) with attempts left puts the job back to todo after
--    a backoff: procq.retry_delay doubled per attempt made, at most
--    procq.retry_delay_max; delayed jobs are not fetchable.  With
--    retry_delay 0 the retry is fetchable at once.  The last attempt fails
--    for good.
--  - retry_job puts a failed or cancelled job back to todo with fresh
--    attempts, and requeues the descendants cancelled because of it
--    (waiting again, pending_parents right).  A descendant that has another
--    failed parent stays cancelled until that parent is retried.
--  - retry_job is refused for todo, doing and succeeded jobs, and for a job
--    whose own parent failed (the hint says which to retry).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
-- Some refusals come from the status trigger; their CONTEXT line would only
-- quote procq's internal UPDATE.
\set SHOW_CONTEXT never

------------------------------------------------------------------------
-- Backoff of one hour: the retry is scheduled an hour ahead.
SET procq.retry_delay = '1h';
SELECT procq.defer('flaky', max_attempts => 3) AS id;
SELECT id, attempts FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'timeout');
SELECT id, status, attempts, error, delayed,
       scheduled_at > now() + interval '59 minutes' AS in_an_hour,
       finished_at IS NULL AS not_finished
  FROM procq.jobs;
SELECT id FROM procq.fetch_job();
-- The backoff doubles with each attempt, up to retry_delay_max: the second
-- failure waits 2 x 10 min = 20 min, capped at 15 min.
SET procq.retry_delay = '10min';
SET procq.retry_delay_max = '15min';
UPDATE procq.jobs SET scheduled_at = now() - interval '1 second' WHERE id = 1;
SELECT id, attempts FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'timeout again');
SELECT id, status, attempts, delayed,
       scheduled_at - now() BETWEEN interval '14 minutes' AND interval '15 minutes' AS in_15_min
  FROM procq.jobs;
-- the last attempt fails for good, without a schedule change
UPDATE procq.jobs SET scheduled_at = now() - interval '1 second' WHERE id = 1;
SELECT id, attempts FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'gave up');
SELECT id, status, attempts, error, delayed, finished_at IS NOT NULL AS finished
  FROM procq.jobs;
RESET procq.retry_delay_max;

-- Without backoff the retry is fetchable at once.
SET procq.retry_delay = 0;
SELECT procq.defer('flaky', max_attempts => 2) AS id;
SELECT id, attempts FROM procq.fetch_job();
SELECT procq.finish_job(2, 'failed');
SELECT id, status, attempts, delayed FROM procq.jobs WHERE id = 2;
SELECT id, attempts FROM procq.fetch_job();
SELECT procq.finish_job(2, 'failed');
SELECT id, status, attempts FROM procq.jobs WHERE id = 2;

------------------------------------------------------------------------
-- retry_job requeues a failed job and what it cancelled.
--   1 root -> 2 child -> 3 grandchild
--   4 other-root;  1 root and 4 other-root -> 5 two-parents
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('root') AS id;
SELECT procq.defer('child', queue => 'children', depends_on => '{1}') AS id;
SELECT procq.defer('grandchild', queue => 'children', depends_on => '{2}') AS id;
SELECT procq.defer('other-root') AS id;
SELECT procq.defer('two-parents', queue => 'children', depends_on => '{1,4}') AS id;
CREATE TEMP VIEW state AS
    SELECT id, task, status, attempts, pending_parents, cancelled_by, error
      FROM procq.jobs ORDER BY id;
-- both roots fail; 1 fails first, so 5 is cancelled through 1
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'root broke');
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(4, 'failed', error => 'other root broke');
TABLE state;

-- Refused: a job whose parent failed must wait for that parent's retry.
SELECT procq.retry_job(2);
SELECT procq.retry_job(5);
TABLE state;

-- Retrying 1: 1, 2 and 3 are back, waiting as before; 5 still has a
-- failed parent (4), so it stays cancelled, now blamed on 4.
SELECT procq.retry_job(1);
TABLE state;
SELECT id FROM procq.fetch_job(ARRAY['children']);
-- Retrying 4 requeues 5, which waits for both roots again.
SELECT procq.retry_job(4);
TABLE state;
SELECT id FROM procq.fetch_job(ARRAY['children']);
-- and the requeued graph runs normally
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(1, 'succeeded');
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(4, 'succeeded');
TABLE state;
SELECT id FROM procq.fetch_job(ARRAY['children']);
SELECT id FROM procq.fetch_job(ARRAY['children']);
SELECT id FROM procq.fetch_job(ARRAY['children']);

------------------------------------------------------------------------
-- Refused for todo, doing and succeeded jobs; state unchanged.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('done') AS id;
SELECT procq.defer('running') AS id;
SELECT procq.defer('waiting') AS id;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'succeeded');
SELECT id FROM procq.fetch_job();
SELECT procq.retry_job(1);
SELECT procq.retry_job(2);
SELECT procq.retry_job(3);
TABLE state;

------------------------------------------------------------------------
-- A cancelled job can be retried too, with a schedule: it is then not
-- fetchable before its time.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('stopped') AS id;
SELECT procq.cancel_job(1);
SELECT procq.retry_job(1, scheduled_at => now() + interval '1 hour');
SELECT id, status, attempts, error, delayed, scheduled_at > now() AS later
  FROM procq.jobs;
SELECT id FROM procq.fetch_job();
-- without a schedule, at once
SELECT procq.cancel_job(1);
SELECT procq.retry_job(1);
SELECT id, status, delayed, scheduled_at FROM procq.jobs;
SELECT id FROM procq.fetch_job();

------------------------------------------------------------------------
-- queueing_lock and retries: a retry may not make a second todo job with
-- the same queueing_lock.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('sync', queueing_lock => 'sync-7', max_attempts => 2) AS id;
SELECT id FROM procq.fetch_job();
SELECT procq.defer('sync', queueing_lock => 'sync-7') AS id;
-- job 1 fails with an attempt left, but job 2 already waits with sync-7:
-- it fails for good and says why
SELECT procq.finish_job(1, 'failed', error => 'network');
SELECT id, status, attempts, error FROM procq.jobs ORDER BY id;
-- and retry_job is refused while job 2 waits
SELECT procq.retry_job(1);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT id, status FROM procq.jobs ORDER BY id;

-- A cancelled descendant whose queueing_lock another todo job now holds
-- is not requeued by retry_job (it would be a second todo job with that
-- queueing_lock): it stays cancelled, with an error naming the holder, and
-- the retry itself succeeds (test/sql/retry_queueing_lock.sql has more).
SET client_min_messages = warning;
DROP EXTENSION procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
SELECT procq.defer('qparent') AS id;
SELECT procq.defer('qchild', depends_on => '{1}', queueing_lock => 'qx') AS id;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed');
SELECT procq.defer('qother', queueing_lock => 'qx') AS id;
SELECT procq.retry_job(1);
SELECT id, task, status, cancelled_by, error FROM procq.jobs ORDER BY id;
