-- multi_row.sql: one statement that changes many jobs keeps the bookkeeping
-- exactly as changing them one at a time would: a set-based finish of
-- several doing jobs (some succeeded, some failed, with shared children and
-- a shared lock), a DBA's multi-row cancel and requeue, multi-row deletes
-- of jobs and of dependencies.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

-- The state every check below prints.
CREATE FUNCTION pg_temp.jobs() RETURNS TABLE (id bigint, task text,
    status procq.job_status, pending_parents int, lock_blocked boolean,
    cancelled_by bigint, error text, finished boolean)
LANGUAGE sql AS $$
    SELECT id, task, status, pending_parents, lock_blocked, cancelled_by,
           error, finished_at IS NOT NULL FROM procq.jobs ORDER BY id
$$;

-- A set-based finish.  Parents 1-4 run at once (4 takes lock L, 5 waits
-- behind it); then one UPDATE ends them: 1, 2 and 4 succeeded, 3 failed.
--   6 <- 1, 2        released (both parents succeeded in the statement)
--   7 <- 1, 3        cancelled through 3
--   8 <- 2           released
--   9 <- 6, 7        waits for 6; cancelled through 7 (deeper level)
--   5 (lock L)       heads its lock queue once 4 is done
SELECT procq.defer('p1') AS id;
SELECT procq.defer('p2') AS id;
SELECT procq.defer('p3') AS id;
SELECT procq.defer('p4', lock => 'L') AS id;
SELECT procq.defer('behind L', lock => 'L') AS id;
SELECT procq.defer('c6', depends_on => '{1,2}') AS id;
SELECT procq.defer('c7', depends_on => '{1,3}') AS id;
SELECT procq.defer('c8', depends_on => '{2}') AS id;
SELECT procq.defer('g9', depends_on => '{6,7}') AS id;
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT * FROM pg_temp.jobs();

UPDATE procq.jobs j SET status = v.status::procq.job_status,
       error = CASE WHEN v.status = 'failed' THEN 'boom' END
  FROM (VALUES (1, 'succeeded'), (2, 'succeeded'), (3, 'failed'),
               (4, 'succeeded')) AS v(id, status)
 WHERE j.id = v.id;
SELECT * FROM pg_temp.jobs();
-- 5 (the new head of L), 6 and 8 are ready, 7 and 9 are not
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT id FROM procq.fetch_job();

-- Retrying the failed parent requeues what the statement cancelled.
SELECT procq.retry_job(3);
SELECT id, status, pending_parents, cancelled_by FROM procq.jobs
 WHERE id IN (3, 7, 9) ORDER BY id;

-- A DBA's multi-row cancel of todo jobs sharing children and a lock queue:
--   1 (lock M), 2 (lock M, behind 1), 3 (lock M, behind 2)
--   4 <- 1, 2       cancelled through 1, the first cancelled parent
--   5 <- 4          cancelled one level deeper
--   7 <- 2, 6       cancelled through 2; 6 is not cancelled
TRUNCATE procq.jobs RESTART IDENTITY CASCADE;
SELECT procq.defer('m1', lock => 'M') AS id;
SELECT procq.defer('m2', lock => 'M') AS id;
SELECT procq.defer('m3', lock => 'M') AS id;
SELECT procq.defer('c4', depends_on => '{1,2}') AS id;
SELECT procq.defer('g5', depends_on => '{4}') AS id;
SELECT procq.defer('p6') AS id;
SELECT procq.defer('c7', depends_on => '{2,6}') AS id;
SELECT * FROM pg_temp.jobs();
UPDATE procq.jobs SET status = 'cancelled' WHERE id IN (1, 2);
SELECT * FROM pg_temp.jobs();
-- 3 now heads lock queue M; 6 is ready
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT id FROM procq.fetch_job();

-- A DBA's multi-row requeue of the cancelled parents: they and the
-- descendants cancelled through them come back, in lock order behind 3
UPDATE procq.jobs SET status = 'todo' WHERE id IN (1, 2);
SELECT * FROM pg_temp.jobs();

-- A statement that touches a succeeded job fails as a whole.
TRUNCATE procq.jobs RESTART IDENTITY CASCADE;
SELECT procq.defer('a') AS id;
SELECT procq.defer('b') AS id;
SELECT procq.finish_job(id, 'succeeded') FROM procq.fetch_job() WHERE id = 1;
UPDATE procq.jobs SET status = 'cancelled' WHERE id IN (1, 2);
SELECT * FROM pg_temp.jobs();

-- Multi-row deletes of jobs: two unfinished parents of one child, a
-- succeeded parent, and two live jobs of one lock queue.
--   1 (done), 2, 3: parents; 4 <- 1, 2, 3; 5 <- 1
--   6 (lock N), 7 (lock N), 8 (lock N)
TRUNCATE procq.jobs RESTART IDENTITY CASCADE;
SELECT procq.defer('p1') AS id;
SELECT procq.defer('p2') AS id;
SELECT procq.defer('p3') AS id;
SELECT procq.defer('c4', depends_on => '{1,2,3}') AS id;
SELECT procq.defer('c5', depends_on => '{1}') AS id;
SELECT procq.defer('n6', lock => 'N') AS id;
SELECT procq.defer('n7', lock => 'N') AS id;
SELECT procq.defer('n8', lock => 'N') AS id;
SELECT procq.finish_job(id, 'succeeded') FROM procq.fetch_job() WHERE id = 1;
SELECT * FROM pg_temp.jobs();
DELETE FROM procq.jobs WHERE id IN (1, 2, 3, 6, 7);
SELECT * FROM pg_temp.jobs();
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT id FROM procq.fetch_job() ORDER BY id;
SELECT id FROM procq.fetch_job();

-- Multi-row deletes of dependencies: a DBA removes two of a child's three
-- dependencies (one on a succeeded parent), then the last one.
--   1 (done), 2, 3: parents; 4 <- 1, 2, 3
TRUNCATE procq.jobs RESTART IDENTITY CASCADE;
SELECT procq.defer('p1') AS id;
SELECT procq.defer('p2') AS id;
SELECT procq.defer('p3') AS id;
SELECT procq.defer('c4', depends_on => '{1,2,3}') AS id;
SELECT procq.finish_job(id, 'succeeded') FROM procq.fetch_job() WHERE id = 1;
DELETE FROM procq.job_dependencies WHERE job_id = 4 AND depends_on IN (1, 2);
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 4;
DELETE FROM procq.job_dependencies WHERE job_id = 4;
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 4;
-- and it runs after the parents that remain
SELECT id FROM procq.fetch_job();
SELECT id FROM procq.fetch_job();
SELECT id FROM procq.fetch_job();

-- A multi-row finish of many jobs: 100 parents, 60 succeeded and 40
-- failed in one statement, each with a child of its own (101-200), one
-- child of all of them (201: cancelled through the first failed parent)
-- and one of the succeeded ones only (202: released).
TRUNCATE procq.jobs RESTART IDENTITY CASCADE;
SELECT count(procq.defer('p' || i)) FROM generate_series(1, 100) i;
SELECT count(procq.defer('c' || i, depends_on => ARRAY[i::bigint]))
  FROM generate_series(1, 100) i;
SELECT procq.defer('shared', depends_on => ARRAY(SELECT generate_series(1, 100)::bigint)) AS id;
SELECT procq.defer('shared-ok', depends_on => ARRAY(SELECT generate_series(1, 60)::bigint)) AS id;
UPDATE procq.jobs SET status = 'doing', attempts = 1, started_at = now(),
    lease_expires_at = now() + interval '1 hour' WHERE id <= 100;
UPDATE procq.jobs SET status = CASE WHEN id <= 60 THEN 'succeeded' ELSE 'failed' END::procq.job_status
 WHERE id <= 100;
SELECT status, pending_parents, count(*) FROM procq.jobs
 WHERE id BETWEEN 101 AND 200 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) FROM procq.jobs
 WHERE id BETWEEN 161 AND 200 AND cancelled_by = id - 100 AND error = 'parent job ' || (id - 100) || ' failed';
SELECT id, status, pending_parents, cancelled_by, error FROM procq.jobs
 WHERE id > 200 ORDER BY id;
