-- conditions_retry.sql (issue 9): retry_job of a failed parent.  Jobs that
-- still wait on it wait for its new outcome: a 'completion' or 'failure'
-- child that has not started goes back to waiting; one that started only
-- has its counters changed (its status is not touched); 'success' children
-- cancelled through it come back, and the same rules apply below them,
-- level by level.  A 'completion' or 'failure' job may be retried while a
-- parent is failed; a 'success' job may not.  Every step checks the
-- bookkeeping invariant (view invariant: no row).
\i test/sql/include/conditions_setup.sql

------------------------------------------------------------------------
-- 1 p -> 2 c1 (completion), 3 f1 (failure), 4 f2 (failure), 5 s1 (success)
--        5 s1 -> 6 g (completion), 7 g2 (success)
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p');
SELECT procq.defer('c1', depends_on => '{1}', run_after => 'completion'),
       procq.defer('f1', depends_on => '{1}', run_after => 'failure'),
       procq.defer('f2', depends_on => '{1}', run_after => 'failure'),
       procq.defer('s1', depends_on => '{1}');
SELECT procq.defer('g', depends_on => '{5}', run_after => 'completion'),
       procq.defer('g2', depends_on => '{5}');
SELECT pg_temp.run('p', 'failed');
TABLE state;
TABLE invariant;
-- f2 starts
SELECT id, status FROM procq.fetch_job(tasks => '{f2}');
-- the retry: c1, f1 and g wait again, f2 (doing) only counts again, s1
-- and g2 come back
SELECT procq.retry_job(1);
TABLE state;
TABLE invariant;
-- none of the waiting ones can be fetched now
SELECT id FROM procq.fetch_job(tasks => '{c1,f1,g}');
-- p succeeds this time: c1 and s1 are ready, f1 is cancelled (all its
-- parents succeeded), f2 keeps running
SELECT pg_temp.run('p');
TABLE state;
TABLE invariant;
SELECT procq.finish_job(4, 'succeeded');
SELECT pg_temp.run('s1');
SELECT id, task, status, pending_parents, failed_parents FROM procq.jobs
 WHERE status = 'todo' ORDER BY id;
TABLE invariant;

------------------------------------------------------------------------
-- A revived chain: 1 p -> 2 s (success) -> 3 c (completion) -> 4 after
-- (success).  p fails: s cancelled, c ready.  Retry p: s back, c waits.
-- s fails: c ready again.  Retry s: c waits again.  s succeeds: c ready.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p');
SELECT procq.defer('s', depends_on => '{1}');
SELECT procq.defer('c', depends_on => '{2}', run_after => 'completion');
SELECT procq.defer('after', depends_on => '{3}');
SELECT pg_temp.run('p', 'failed');
TABLE state;
SELECT procq.retry_job(1);
TABLE state;
TABLE invariant;
SELECT pg_temp.run('p');
SELECT pg_temp.run('s', 'failed');
TABLE state;
TABLE invariant;
SELECT procq.retry_job(2);
TABLE state;
TABLE invariant;
SELECT pg_temp.run('s');
SELECT pg_temp.run('c');
SELECT pg_temp.run('after');
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- A deeper revive: 1 p -> 2 s1 -> 3 s2 -> 4 f (failure) and 5 c
-- (completion, on 2 and 3).  p fails: s1, s2 cancelled; f and c ready.
-- Retry p: s1, s2 back; f and c wait (counters exact at each level).
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p');
SELECT procq.defer('s1', depends_on => '{1}');
SELECT procq.defer('s2', depends_on => '{2}');
SELECT procq.defer('f', depends_on => '{3}', run_after => 'failure');
SELECT procq.defer('c', depends_on => '{2,3}', run_after => 'completion');
SELECT pg_temp.run('p', 'failed');
TABLE state;
TABLE invariant;
SELECT procq.retry_job(1);
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- Retrying jobs whose parent is failed: a 'completion' or 'failure' job
-- may be retried (it ran after its parent failed); a 'success' job may
-- not (it would wait for a parent that will never succeed).
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p');
SELECT procq.defer('c', depends_on => '{1}', run_after => 'completion'),
       procq.defer('f', depends_on => '{1}', run_after => 'failure'),
       procq.defer('s', depends_on => '{1}');
SELECT pg_temp.run('p', 'failed');
SELECT pg_temp.run('c', 'failed');
SELECT pg_temp.run('f', 'failed');
SELECT procq.retry_job(2);
SELECT procq.retry_job(3);
SELECT procq.retry_job(4);
TABLE state;
TABLE invariant;
-- they run again at once (their parent is final)
SELECT pg_temp.run('c');
SELECT pg_temp.run('f');
-- a DBA's requeue of the 'success' one is refused the same way
UPDATE procq.jobs SET status = 'todo' WHERE id = 4;
-- a DBA's requeue of the failed parent works like retry_job
UPDATE procq.jobs SET status = 'todo' WHERE id = 1;
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- A 'failure' job cancelled because all its parents succeeded cannot go
-- back to todo (it could only run without a reason): retry_job and a
-- DBA's requeue are refused, nothing changes.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p');
SELECT procq.defer('f', depends_on => '{1}', run_after => 'failure');
SELECT pg_temp.run('p');
SELECT procq.retry_job(2);
UPDATE procq.jobs SET status = 'todo' WHERE id = 2;
TABLE state;
TABLE invariant;
