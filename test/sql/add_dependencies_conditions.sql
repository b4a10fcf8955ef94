-- add_dependencies_conditions.sql (issue 9): parents added by
-- add_dependencies to 'completion' and 'failure' children count as any
-- others when they end later (the conditions themselves: conditions*.sql).
--   'completion': runs once every parent is final, however it ended; a
--   failed parent, added or not, never cancels it.
--   'failure': runs once every parent is final and one did not succeed;
--   cancelled ('all its parents succeeded') when they all succeeded.
-- After every step, pending_parents and failed_parents of every job agree
-- with its parents (no row from broken_counters).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

CREATE TEMP VIEW broken_counters AS
    SELECT j.id, j.pending_parents, c.pending, j.failed_parents, c.failed
    FROM procq.jobs j
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE CASE WHEN j.run_after = 'success'
                                           THEN p.status <> 'succeeded'
                                           ELSE p.status IN ('todo', 'doing') END)::int AS pending,
               count(*) FILTER (WHERE p.status IN ('failed', 'cancelled'))::int AS failed
        FROM procq.job_dependencies d JOIN procq.jobs p ON p.id = d.depends_on
        WHERE d.job_id = j.id) c
    WHERE (j.pending_parents, j.failed_parents) IS DISTINCT FROM (c.pending, c.failed);

CREATE VIEW pg_temp.children AS
    SELECT j.id, j.task, j.status, j.run_after, j.pending_parents, j.failed_parents,
           j.status = 'todo' AND j.pending_parents = 0 AND NOT j.lock_blocked
               AND NOT j.delayed AS ready,
           j.cancelled_by, j.error
    FROM procq.jobs j WHERE j.task LIKE 'c\_%' ORDER BY j.id;

-- finish(id, status): fetch job id (by its task) and end it.
CREATE FUNCTION pg_temp.finish(id bigint, st procq.job_status) RETURNS procq.job_status
LANGUAGE sql AS $$
    SELECT procq.finish_job(f.id, st, error => CASE WHEN st = 'failed' THEN 'boom' END)
    FROM procq.fetch_job(tasks => ARRAY[(SELECT task FROM procq.jobs WHERE jobs.id = finish.id)]) f
$$;

-- Parents: 1 f_done (will fail before it gets a child), 2..7 todo.
SELECT procq.defer('f_done', max_attempts => 1) AS id;
SELECT pg_temp.finish(1, 'failed');
SELECT procq.defer('p_' || i) AS id FROM generate_series(2, 7) AS i;
SELECT procq.defer('s_done') AS id;
SELECT pg_temp.finish(8, 'succeeded');

-- 9: 'completion' child of 2; gets 3 (todo) and 1 (failed): waits for 2
-- and 3, counts 1 as failed, and is not cancelled.
SELECT procq.defer('c_cleanup', depends_on => '{2}', run_after => 'completion') AS id;
SELECT procq.add_dependencies(9, '{3, 1}') AS added;
SELECT * FROM pg_temp.children;
-- 2 fails: still not cancelled, waits for 3 only; 3 succeeds: ready.
SELECT pg_temp.finish(2, 'failed');
SELECT * FROM pg_temp.children;
SELECT pg_temp.finish(3, 'succeeded');
SELECT * FROM pg_temp.children;
SELECT id, task FROM procq.fetch_job(tasks => '{c_cleanup}');
SELECT * FROM broken_counters;

-- 10: 'failure' child of 4; gets 5 (todo): both succeed, and it is
-- cancelled, all its parents succeeded.
SELECT procq.defer('c_alert_none', depends_on => '{4}', run_after => 'failure') AS id;
SELECT procq.add_dependencies(10, '{5}') AS added;
SELECT pg_temp.finish(4, 'succeeded');
SELECT * FROM pg_temp.children WHERE id = 10;
SELECT pg_temp.finish(5, 'succeeded');
SELECT * FROM pg_temp.children WHERE id = 10;
SELECT * FROM broken_counters;

-- 11: 'failure' child of 6; gets 1 (failed): once 6 succeeds it runs.
SELECT procq.defer('c_alert_one', depends_on => '{6}', run_after => 'failure') AS id;
SELECT procq.add_dependencies(11, '{1}') AS added;
SELECT * FROM pg_temp.children WHERE id = 11;
SELECT pg_temp.finish(6, 'succeeded');
SELECT * FROM pg_temp.children WHERE id = 11;
SELECT id, task FROM procq.fetch_job(tasks => '{c_alert_one}');
SELECT * FROM broken_counters;

-- 12: 'failure' child of 7; gets 8 (succeeded): nothing to wait for from
-- it; 7 succeeds and 12 is cancelled.
SELECT procq.defer('c_alert_ok', depends_on => '{7}', run_after => 'failure') AS id;
SELECT procq.add_dependencies(12, '{8}') AS added;
SELECT * FROM pg_temp.children WHERE id = 12;
SELECT pg_temp.finish(7, 'succeeded');
SELECT * FROM pg_temp.children WHERE id = 12;
SELECT * FROM broken_counters;
