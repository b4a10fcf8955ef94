-- locks.sql (rule 7): lock and queueing_lock.
--  - Jobs sharing a lock: at most one is doing; they start in id order,
--    whatever their priority; the next one starts once the one ahead has
--    ended (succeeded, failed, cancelled or deleted).  A job waiting for
--    another attempt keeps its place.  Different locks are independent.
--  - lock_blocked is true for every todo job of a lock but its head.
--  - queueing_lock: at most one todo job per value (SQLSTATE 23505); a new
--    one may be deferred once the first has started.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

CREATE TEMP VIEW state AS
    SELECT id, task, lock, priority, status, lock_blocked
      FROM procq.jobs ORDER BY id;

------------------------------------------------------------------------
-- Id order beats priority within a lock; a job without lock runs beside.
SELECT procq.defer('L-first', lock => 'L') AS id;
SELECT procq.defer('L-urgent', lock => 'L', priority => 10) AS id;
SELECT procq.defer('L-third', lock => 'L') AS id;
SELECT procq.defer('free') AS id;
TABLE state;
SELECT id, task FROM procq.fetch_job();
SELECT id, task FROM procq.fetch_job();
-- L-urgent has the highest priority but waits for L-first
SELECT id, task FROM procq.fetch_job();
SELECT count(*) AS doing_with_L FROM procq.jobs WHERE lock = 'L' AND status = 'doing';
TABLE state;
-- L-first ends: L-urgent (next id) is the new head, L-third still waits
SELECT procq.finish_job(1, 'succeeded');
TABLE state;
SELECT id, task FROM procq.fetch_job();
SELECT id, task FROM procq.fetch_job();
SELECT procq.finish_job(2, 'succeeded');
SELECT id, task FROM procq.fetch_job();

------------------------------------------------------------------------
-- The next job starts after the head ended in any way.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('job-' || i, lock => 'L', max_attempts => CASE WHEN i = 1 THEN 2 ELSE 1 END)
  FROM generate_series(1, 7) AS i;
TABLE state;
-- 1 fails with an attempt left: back in todo, still the head
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed');
SELECT id, status, lock_blocked FROM procq.jobs WHERE id <= 2 ORDER BY id;
SELECT id FROM procq.fetch_job();
-- 1 succeeded -> 2
SELECT procq.finish_job(1, 'succeeded');
SELECT id FROM procq.fetch_job();
-- 2 failed for good -> 3
SELECT procq.finish_job(2, 'failed');
SELECT id FROM procq.fetch_job();
-- 3 cancelled by its worker -> 4
SELECT procq.finish_job(3, 'cancelled');
SELECT id FROM procq.fetch_job();
-- 4 deleted while doing -> 5
DELETE FROM procq.jobs WHERE id = 4;
TABLE state;
-- 5 is now the head but todo: cancelled with cancel_job -> 6
SELECT procq.cancel_job(5);
TABLE state;
-- 6 is the todo head: deleted -> 7
DELETE FROM procq.jobs WHERE id = 6;
TABLE state;
SELECT id FROM procq.fetch_job();

------------------------------------------------------------------------
-- Different locks are independent.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('A-1', lock => 'A') AS id;
SELECT procq.defer('A-2', lock => 'A') AS id;
SELECT procq.defer('B-1', lock => 'B') AS id;
SELECT procq.defer('B-2', lock => 'B') AS id;
SELECT id, task FROM procq.fetch_job();
SELECT id, task FROM procq.fetch_job();
SELECT id, task FROM procq.fetch_job();
TABLE state;
-- B moving on does not unblock A
SELECT procq.finish_job(3, 'succeeded');
SELECT id, task FROM procq.fetch_job();
SELECT id, task FROM procq.fetch_job();
TABLE state;

------------------------------------------------------------------------
-- retry_job of an earlier job while a later one holds the lock: it waits,
-- and goes first (lowest id) once the lock is free.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('job-' || i, lock => 'L') FROM generate_series(1, 3) AS i;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed');
SELECT id FROM procq.fetch_job();
SELECT procq.retry_job(1);
TABLE state;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(2, 'succeeded');
TABLE state;
SELECT id FROM procq.fetch_job();

------------------------------------------------------------------------
-- The head holds the lock even while it waits for a parent; when it is
-- cancelled by the cascade, the lock passes on.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('parent') AS id;
SELECT procq.defer('L-child', lock => 'L', depends_on => '{1}') AS id;
SELECT procq.defer('L-free', lock => 'L') AS id;
TABLE state;
SELECT id, task FROM procq.fetch_job();
SELECT id, task FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed');
TABLE state;
SELECT id, task FROM procq.fetch_job();

------------------------------------------------------------------------
-- queueing_lock: one todo job per value.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('refresh', queueing_lock => 'refresh-user-7') AS id;
SELECT procq.defer('refresh', queueing_lock => 'refresh-user-7');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT count(*) AS jobs FROM procq.jobs;
-- another value is fine
SELECT procq.defer('refresh', queueing_lock => 'refresh-user-8') AS id;
-- once the first has started, a new one may wait
SELECT id FROM procq.fetch_job();
SELECT procq.defer('refresh', queueing_lock => 'refresh-user-7') AS id;
SELECT id, queueing_lock, status FROM procq.jobs ORDER BY id;
-- and that one holds the value now
SELECT procq.defer('refresh', queueing_lock => 'refresh-user-7');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
-- a cancelled job frees its value (the failed defers used up ids 2 and 5)
SELECT procq.cancel_job(4);
SELECT procq.defer('refresh', queueing_lock => 'refresh-user-7') AS id;
SELECT id, queueing_lock, status FROM procq.jobs ORDER BY id;
