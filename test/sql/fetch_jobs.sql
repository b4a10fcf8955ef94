-- fetch_jobs.sql: procq.fetch_jobs, and the tasks filter of fetch_job.
--  - fetch_jobs(n) takes up to n ready jobs in one call, returned in fetch
--    order (priority DESC, id), each doing with attempts counted, started_at,
--    worker (default "backend <pid>") and a lease; fewer when fewer are
--    ready, none when none is.
--  - the rules of fetch_job hold within one batch: never a job waiting on a
--    parent, scheduled for later or behind a lock, at most one job per lock
--    value; due scheduled jobs are promoted first.
--  - queues and tasks filter (NULL: all; an empty array: nothing); several
--    of each are merged in fetch order.  fetch_job takes tasks too.
--  - n < 1 is 22023, n NULL 22004, a NULL element of queues or tasks 22004.
--  - a task filter reads the per-task ready index (EXPLAIN).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

CREATE TEMP VIEW state AS
    SELECT id, task, queue, status, attempts, worker IS NOT NULL AS has_worker,
           started_at IS NOT NULL AS started, lease_expires_at > now() AS leased
      FROM procq.jobs ORDER BY id;

------------------------------------------------------------------------
-- Fetch order, fields, fewer than n.
SELECT procq.defer('low', priority => -1) AS id;                       -- 1
SELECT procq.defer('a') AS id;                                         -- 2
SELECT procq.defer('urgent', priority => 5) AS id;                     -- 3
SELECT procq.defer('b') AS id;                                         -- 4
SELECT id, task, priority, status, attempts, worker
  FROM procq.fetch_jobs(3, worker => 'w1');
-- worker defaults to the backend, as for fetch_job
SELECT id, task, status, attempts, worker = 'backend ' || pg_backend_pid() AS backend_worker
  FROM procq.fetch_jobs(10);
TABLE state;
-- nothing left: no rows
SELECT count(*) FROM procq.fetch_jobs(5);

------------------------------------------------------------------------
-- Never a waiting job, a scheduled one or one behind a lock; at most one
-- job per lock value in a batch.
SELECT procq.defer('parent', queue => 'rules') AS parent \gset
SELECT procq.defer('child', queue => 'rules', depends_on => ARRAY[:parent]) AS id;
SELECT procq.defer('tomorrow', queue => 'rules', scheduled_at => now() + interval '1 day') AS id;
SELECT procq.defer('L1', queue => 'rules', lock => 'L') AS id;
SELECT procq.defer('L2', queue => 'rules', lock => 'L', priority => 9) AS id;
SELECT procq.defer('L3', queue => 'rules', lock => 'L') AS id;
SELECT procq.defer('M1', queue => 'rules', lock => 'M') AS id;
SELECT procq.defer('free', queue => 'rules') AS id;
SELECT id, task, lock FROM procq.fetch_jobs(100, ARRAY['rules']);
SELECT count(*) AS doing_per_lock FROM procq.jobs WHERE status = 'doing' AND lock IS NOT NULL GROUP BY lock;
-- once L1 is done, L2 is next, alone; the child once its parent succeeded
SELECT procq.finish_job(id, 'succeeded') FROM procq.jobs WHERE task IN ('L1', 'parent');
SELECT id, task, lock FROM procq.fetch_jobs(100, ARRAY['rules']);

-- A due scheduled job is promoted and fetched in the same call.
UPDATE procq.jobs SET scheduled_at = now() - interval '1 second' WHERE task = 'tomorrow';
SELECT id, task, delayed FROM procq.fetch_jobs(100, ARRAY['rules']);
-- more due jobs than fetch_job promotes per call (10) are taken in one batch
SELECT count(*) FROM procq.defer_jobs('due', array_fill('{}'::jsonb, ARRAY[25]),
    queue => 'due', scheduled_at => now() + interval '1 hour');
UPDATE procq.jobs SET scheduled_at = now() - interval '1 second' WHERE queue = 'due';
SELECT count(*) FROM procq.fetch_jobs(25, ARRAY['due']);

------------------------------------------------------------------------
-- Queue and task filters.
SELECT procq.defer('t1', queue => 'qa') AS id;
SELECT procq.defer('t2', queue => 'qb', priority => 1) AS id;
SELECT procq.defer('t1', queue => 'qb') AS id;
SELECT procq.defer('t3', queue => 'qc', priority => 2) AS id;
SELECT procq.defer('t2', queue => 'qa') AS id;
SELECT procq.defer('t1', queue => 'qc') AS id;
BEGIN;
-- several queues, merged in fetch order
SELECT id, task, queue FROM procq.fetch_jobs(10, ARRAY['qa', 'qb', 'qa']);
ROLLBACK;
BEGIN;
-- one task
SELECT id, task, queue FROM procq.fetch_jobs(10, tasks => ARRAY['t1']);
ROLLBACK;
BEGIN;
-- several tasks, merged in fetch order, limited to n
SELECT id, task, queue FROM procq.fetch_jobs(3, tasks => ARRAY['t1', 't3', 't2']);
ROLLBACK;
BEGIN;
-- tasks and queues together
SELECT id, task, queue FROM procq.fetch_jobs(10, ARRAY['qb', 'qc'], tasks => ARRAY['t1']);
SELECT id, task, queue FROM procq.fetch_jobs(10, ARRAY['qa'], tasks => ARRAY['t1', 't2']);
ROLLBACK;
-- an empty list of queues or tasks takes nothing
SELECT count(*) FROM procq.fetch_jobs(10, ARRAY[]::text[]);
SELECT count(*) FROM procq.fetch_jobs(10, tasks => ARRAY[]::text[]);
SELECT count(*) FROM procq.fetch_job(tasks => ARRAY[]::text[]);

-- fetch_job with tasks: the best ready job of those tasks
SELECT id, task, queue FROM procq.fetch_job(tasks => ARRAY['t2']);
SELECT id, task, queue FROM procq.fetch_job(ARRAY['qc'], 'w9', ARRAY['t1', 't3']);
SELECT id, task, queue, worker FROM procq.fetch_job(worker => 'w9', tasks => ARRAY['t1', 't3']);
SELECT count(*) FROM procq.fetch_job(tasks => ARRAY['no such task']);
-- 1.0's calls still work as before
SELECT id, task FROM procq.fetch_job(ARRAY['qa'], 'w10');
SELECT id, task FROM procq.fetch_job(worker => 'w10');
SELECT count(*) FROM procq.fetch_job();

------------------------------------------------------------------------
-- Bad input.
SELECT * FROM procq.fetch_jobs(0);
SELECT * FROM procq.fetch_jobs(-5);
SELECT * FROM procq.fetch_jobs(NULL);
SELECT * FROM procq.fetch_jobs(1, ARRAY['qa', NULL]);
SELECT * FROM procq.fetch_jobs(1, tasks => ARRAY[NULL]::text[]);
SELECT * FROM procq.fetch_job(tasks => ARRAY['t1', NULL]);

------------------------------------------------------------------------
-- A task filter descends the per-task ready index once per role and reads
-- only that task's entries, whatever other tasks have ready (index
-- statistics of this backend, flushed on demand).  The global ready index
-- is read only by a superuser's fetch, which first finds the roles that
-- have jobs to fetch there, one descent each (a loose scan: 2 scans and 1
-- entry per fetch here).
SELECT count(*) FROM procq.defer_jobs('noise', array_fill('{}'::jsonb, ARRAY[2000]));
SELECT procq.defer('needle', priority => -100) AS id \gset
SELECT pg_stat_force_next_flush();
CREATE TEMP TABLE index_use AS
    SELECT indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes
     WHERE schemaname = 'procq';
BEGIN;
SELECT id = :id AS needle, task FROM procq.fetch_jobs(100, tasks => ARRAY['needle']);
SELECT id = :id AS needle, task FROM procq.fetch_job(tasks => ARRAY['needle', 'other']);
ROLLBACK;
SELECT pg_stat_force_next_flush();
SELECT s.indexrelname, s.idx_scan - u.idx_scan AS scans,
       s.idx_tup_read - u.idx_tup_read AS entries_read
  FROM pg_stat_user_indexes s JOIN index_use u USING (indexrelname)
 WHERE s.schemaname = 'procq' AND s.indexrelname IN ('jobs_ready_idx', 'jobs_ready_task_idx')
 ORDER BY 1;
