-- retry_queueing_lock.sql (issue 8, bounds): retrying a job always works,
-- whatever queueing locks its cancelled descendants have.  The retry
-- requeues the descendants cancelled through it; of those that share a
-- queueing_lock, at most one may be todo: the one with the lowest id goes
-- back to todo, the others stay cancelled, each with an error saying which
-- job holds the queueing_lock (and so do their own descendants).  One
-- whose queueing_lock a todo job outside the retry holds stays cancelled
-- too, with the same kind of error.  Such a job can be retried by itself
-- once the queueing_lock is free.
--
-- Before, two cancelled children sharing a queueing_lock made retry_job
-- of their parent fail with a raw unique violation (23505, index
-- jobs_queueing_lock_idx), and the parent could then never be retried.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

CREATE TEMP VIEW jobs AS
    SELECT id, task, status, queueing_lock AS qlock, cancelled_by, error
    FROM procq.jobs ORDER BY id;

-- Parent 1 fails; child 2 (queueing_lock q) is cancelled.  Child 3, also
-- q, is deferred after the failure, so it is created cancelled (no todo
-- job holds q then).  Child 4 (q) depends on 2.  Child 5 has another
-- queueing_lock, r, and child 6 none.
SELECT procq.defer('parent') AS id;
SELECT procq.defer('child a', depends_on => ARRAY[1], queueing_lock => 'q') AS id;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'boom');
SELECT procq.defer('child b', depends_on => ARRAY[1], queueing_lock => 'q') AS id;
SELECT procq.defer('grandchild', depends_on => ARRAY[2], queueing_lock => 'q') AS id;
SELECT procq.defer('child r', depends_on => ARRAY[1], queueing_lock => 'r') AS id;
SELECT procq.defer('child', depends_on => ARRAY[1]) AS id;
TABLE jobs;

-- The retry works: 2 gets q back, 3 stays cancelled and says why; 4 (a
-- child of 2, also q) stays cancelled behind 2; 5 and 6 come back.
SELECT procq.retry_job(1);
TABLE jobs;

-- The parent can fail and be retried again, as often as needed.
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'boom again');
TABLE jobs;
SELECT procq.retry_job(1);
TABLE jobs;

-- Once job 2 has started, q is free: job 3 can be retried by itself.
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'succeeded');
SELECT id, task FROM procq.fetch_job(tasks => ARRAY['child a']);
SELECT procq.retry_job(3);
SELECT id, status, qlock, error FROM jobs WHERE id IN (2, 3);

------------------------------------------------------------------------
-- A todo job outside the retry holds the queueing_lock: the cancelled
-- child stays cancelled, and the retry works.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('parent') AS id;
SELECT procq.defer('child', depends_on => ARRAY[1], queueing_lock => 'q') AS id;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed');
SELECT procq.defer('holder', queueing_lock => 'q') AS id;
SELECT procq.retry_job(1);
TABLE jobs;

------------------------------------------------------------------------
-- The same through a DBA's UPDATE, and through defer_workflow: one
-- statement requeueing two failed parents whose children share q.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT * FROM procq.defer_workflow('[
  {"key": "p1", "task": "parent"},
  {"key": "p2", "task": "parent"},
  {"key": "c1", "task": "child", "depends_on": ["p1"], "queueing_lock": "q"}
]');
SELECT count(*) FROM procq.fetch_jobs(2);
SELECT * FROM procq.finish_jobs(ARRAY[1, 2]::bigint[], 'failed');
SELECT procq.defer('child', depends_on => ARRAY[2], queueing_lock => 'q') AS id;
TABLE jobs;
UPDATE procq.jobs SET status = 'todo' WHERE id IN (1, 2);
TABLE jobs;
