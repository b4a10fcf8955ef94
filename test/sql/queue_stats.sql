-- queue_stats.sql: procq.queue_stats (issue 10).
--  - it agrees with a count over the whole table (pg_temp.truth) after
--    every kind of change: defer (ready, waiting on parents, on a lock,
--    scheduled, inserted cancelled), fetch, finish, a retry by finish_job,
--    cancel with its cascade, retry_job (a job leaves a final status, and
--    its revived descendants), release_job, a DBA's UPDATE of status and of
--    queue, INSERT of final jobs, DELETE, purge, TRUNCATE, a rolled-back
--    change, a REPEATABLE READ transaction;
--  - the counts of final jobs stay a few rows per queue (they are folded);
--  - EXPLAIN: the jobs are read through jobs_live_idx and jobs_finished_idx
--    only, never all of procq.jobs;
--  - privileges: nothing for PUBLIC; SELECT on it shows every role's queues.
-- Concurrency: test/isolation/specs/queue_stats_concurrent.spec.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
DROP ROLE IF EXISTS regress_stats_monitor;
DROP ROLE IF EXISTS regress_stats_app;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

-- the same figures, counted over the whole table
CREATE VIEW pg_temp.truth AS
    SELECT queue,
           count(*) FILTER (WHERE status = 'todo') AS todo,
           count(*) FILTER (WHERE status = 'doing') AS doing,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE status = 'todo' AND pending_parents = 0 AND NOT lock_blocked
                            AND (NOT delayed OR scheduled_at <= now())) AS ready,
           count(*) FILTER (WHERE status = 'todo' AND pending_parents > 0) AS waiting_parents,
           count(*) FILTER (WHERE status = 'todo' AND pending_parents = 0 AND lock_blocked) AS waiting_lock,
           count(*) FILTER (WHERE status = 'todo' AND pending_parents = 0 AND NOT lock_blocked
                            AND delayed AND scheduled_at > now()) AS scheduled,
           now() - min(greatest(created_at, scheduled_at))
               FILTER (WHERE status = 'todo' AND pending_parents = 0 AND NOT lock_blocked
                       AND (NOT delayed OR scheduled_at <= now())) AS oldest_ready_age,
           count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'cancelled')
                            AND finished_at >= now() - interval '1 minute') AS finished_last_minute
    FROM procq.jobs GROUP BY queue;
-- 'same' when the view and the truth agree, else the rows that differ
CREATE FUNCTION pg_temp.check() RETURNS TABLE (side text, row_ text) LANGUAGE sql AS $$
    WITH v AS (SELECT * FROM procq.queue_stats), t AS (SELECT * FROM pg_temp.truth),
    d AS (SELECT 'view' AS side, v::text FROM (SELECT * FROM v EXCEPT SELECT * FROM t) v
          UNION ALL
          SELECT 'truth', t::text FROM (SELECT * FROM t EXCEPT SELECT * FROM v) t)
    SELECT * FROM d
    UNION ALL SELECT 'same', NULL WHERE NOT EXISTS (SELECT 1 FROM d)
$$;
-- the figures, without the age (which depends on the clock)
CREATE VIEW pg_temp.figures AS
    SELECT queue, todo, doing, succeeded, failed, cancelled, ready, waiting_parents,
           waiting_lock, scheduled, oldest_ready_age IS NOT NULL AS has_ready,
           finished_last_minute
    FROM procq.queue_stats ORDER BY queue;

SELECT * FROM procq.queue_stats;                                   -- no queues yet

------------------------------------------------------------------------
-- defer: each kind of todo job
SELECT procq.defer('parent', queue => 'a') AS p1;                  -- 1
SELECT procq.defer('child', queue => 'b', depends_on => ARRAY[1]); -- 2, waits on 1
SELECT procq.defer('locked', queue => 'b', lock => 'L');           -- 3, heads L
SELECT procq.defer('locked', queue => 'b', lock => 'L');           -- 4, behind 3
SELECT procq.defer('later', queue => 'c', scheduled_at => now() + interval '1 hour');  -- 5
SELECT procq.defer('due', queue => 'c', scheduled_at => now() + interval '1 hour');    -- 6
UPDATE procq.jobs SET scheduled_at = now() - interval '1 minute' WHERE id = 6;         -- due: ready
SELECT * FROM pg_temp.figures;
SELECT * FROM pg_temp.check();

-- fetch, finish, a retry by finish_job, fail for good (cascade)
SELECT procq.defer('flaky', queue => 'a', max_attempts => 2) AS flaky;   -- 7
SELECT procq.defer('after flaky', queue => 'b', depends_on => ARRAY[7]);  -- 8
SELECT id FROM procq.fetch_job(tasks => '{flaky}');
SELECT * FROM pg_temp.figures WHERE queue = 'a';
SELECT procq.finish_job(7, 'failed');                              -- todo again
SELECT id FROM procq.fetch_job(tasks => '{flaky}');
SELECT procq.finish_job(7, 'failed');                              -- failed, 8 cancelled
SELECT id FROM procq.fetch_job(tasks => '{parent}');
SELECT procq.finish_job(1, 'succeeded');                           -- 2 ready
SELECT * FROM pg_temp.figures;
SELECT * FROM pg_temp.check();

-- a child of a failed parent is inserted cancelled
SELECT procq.defer('orphan', queue => 'd', depends_on => ARRAY[7]);       -- 9
SELECT id, status FROM procq.jobs WHERE id = 9;
SELECT * FROM pg_temp.check();

-- retry_job: 7 leaves failed, 8 leaves cancelled
SELECT procq.retry_job(7);
SELECT * FROM pg_temp.figures;
SELECT * FROM pg_temp.check();

-- cancel with its cascade, release_job
SELECT procq.cancel_job(7);
SELECT id FROM procq.fetch_job(tasks => '{locked}');
SELECT procq.release_job(3);
SELECT * FROM pg_temp.check();

-- a DBA's UPDATE: of status (cancelled -> failed), of queue of final jobs
UPDATE procq.jobs SET status = 'failed' WHERE id = 8;
UPDATE procq.jobs SET queue = 'e' WHERE id IN (1, 7);
SELECT * FROM pg_temp.figures;
SELECT * FROM pg_temp.check();

-- final jobs inserted as such (as a restore does)
INSERT INTO procq.jobs (queue, task, status, attempts, started_at, finished_at, result)
SELECT 'f', 'old', 'succeeded', 1, now() - interval '2 days', now() - interval '2 days', '{}'
FROM generate_series(1, 3);
SELECT * FROM pg_temp.check();

-- DELETE, purge, a rolled-back change
DELETE FROM procq.jobs WHERE id = 9;
SELECT procq.purge('1 day');
BEGIN;
SELECT id FROM procq.fetch_job(tasks => '{child}');
SELECT procq.finish_job(2, 'succeeded');
SELECT * FROM pg_temp.check();
ROLLBACK;
SELECT * FROM pg_temp.figures;
SELECT * FROM pg_temp.check();

-- REPEATABLE READ: counted too, and no serialization failure
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT id FROM procq.fetch_job(tasks => '{child}');
SELECT procq.finish_job(2, 'succeeded');
COMMIT;
SELECT * FROM pg_temp.check();

------------------------------------------------------------------------
-- many statements: the counts are folded, a few rows per queue remain
SELECT count(*) AS deferred FROM (
    SELECT procq.defer('bulk', queue => 'bulk' || (i % 3)) FROM generate_series(1, 3000) i) d;
DO $$
DECLARE
    j procq.jobs;
BEGIN
    LOOP
        SELECT * INTO j FROM procq.fetch_job(tasks => '{bulk}');
        EXIT WHEN j.id IS NULL;
        PERFORM procq.finish_job(j.id, CASE WHEN j.id % 2 = 0 THEN 'succeeded' ELSE 'failed' END::procq.job_status);
    END LOOP;
END
$$;
SELECT * FROM pg_temp.check();
SELECT count(*) < 300 AS folded FROM procq.queue_counts;

------------------------------------------------------------------------
-- EXPLAIN: no plan node reads all of procq.jobs.  1,000 live and 20,000
-- finished jobs, so that the planner's choice is the one of a real table.
INSERT INTO procq.jobs (queue, task, status, attempts, started_at, finished_at)
SELECT 'old' || (i % 5), 'old', 'succeeded', 1, now() - interval '3 days', now() - interval '3 days'
FROM generate_series(1, 20000) i;
SELECT count(*) AS deferred FROM (
    SELECT procq.defer('live', queue => 'live' || (i % 5)) FROM generate_series(1, 1000) i) d;
ANALYZE procq.jobs;
SELECT * FROM pg_temp.check();
CREATE FUNCTION pg_temp.plan_lines() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    FOR line IN EXPLAIN (COSTS OFF) SELECT * FROM procq.queue_stats LOOP
        RETURN NEXT line;
    END LOOP;
END
$$;
-- the indexes through which the plan reads procq.jobs, and the plan nodes
-- that read its table other than through an index (none)
SELECT DISTINCT (regexp_match(l, '(jobs_[a-z_]+_idx)'))[1] AS index_used
FROM pg_temp.plan_lines() AS l WHERE l ~ 'jobs_[a-z_]+_idx' ORDER BY 1;
SELECT regexp_replace(l, '^[ ->]*', '') AS reads_jobs_without_index
FROM pg_temp.plan_lines() AS l
WHERE l ~ ' on jobs( |$)' AND l !~ '(Bitmap Heap Scan|Index Scan|Index Only Scan) (using jobs_[a-z_]+_idx )?on jobs';

------------------------------------------------------------------------
-- TRUNCATE: nothing left, nothing counted
TRUNCATE procq.jobs CASCADE;
SELECT count(*) AS count_rows FROM procq.queue_counts;
SELECT * FROM procq.queue_stats;

------------------------------------------------------------------------
-- privileges: nothing for PUBLIC; SELECT shows every role's queues
CREATE ROLE regress_stats_monitor;
CREATE ROLE regress_stats_app;
GRANT USAGE ON SCHEMA procq TO regress_stats_monitor, regress_stats_app;
GRANT EXECUTE ON FUNCTION procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text, text, bigint)
    TO regress_stats_app;
SET ROLE regress_stats_app;
SELECT procq.defer('app job', queue => 'app');
SELECT count(*) FROM procq.queue_stats;                             -- 42501
RESET ROLE;
SET ROLE regress_stats_monitor;
SELECT count(*) FROM procq.queue_stats;                             -- 42501
RESET ROLE;
GRANT SELECT ON procq.queue_stats TO regress_stats_monitor;
SET ROLE regress_stats_monitor;
SELECT queue, todo, ready FROM procq.queue_stats;                   -- the app's queue
SELECT count(*) FROM procq.queue_counts;                            -- 42501: the view only
RESET ROLE;

DROP VIEW pg_temp.figures;
DROP FUNCTION pg_temp.check();
DROP VIEW pg_temp.truth;
DROP EXTENSION procq CASCADE;
DROP OWNED BY regress_stats_monitor, regress_stats_app;
DROP ROLE regress_stats_monitor;
DROP ROLE regress_stats_app;
