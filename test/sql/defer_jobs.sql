-- defer_jobs.sql: procq.defer_jobs inserts one job per element of args.
--  - ids ascend in the order of args; every job has the same task, queue,
--    priority, schedule, max_attempts and lock, and depends on every job of
--    depends_on (a fan-out in one call), with the rules of defer: a parent
--    that succeeded is satisfied, one that failed or was cancelled makes the
--    jobs cancelled, a missing one is 23503, a NULL one 22004.
--  - jobs sharing a lock: the first heads the queue (unless it is busy),
--    the others wait behind it, in order.
--  - a NULL element of args is 22004 and nothing is inserted; an empty
--    array inserts nothing and returns no rows; defer's checks apply
--    (task, queue not empty, max_attempts >= 1, NULL arguments).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

CREATE TEMP VIEW state AS
    SELECT id, task, args, queue, priority, status, max_attempts, lock,
           pending_parents AS pending, lock_blocked AS blocked, delayed,
           cancelled_by, error
      FROM procq.jobs ORDER BY id;
CREATE TEMP VIEW counts AS
    SELECT (SELECT count(*) FROM procq.jobs) AS jobs,
           (SELECT count(*) FROM procq.job_dependencies) AS deps;

------------------------------------------------------------------------
-- Ids in the order of args, settings on every job.
SELECT * FROM procq.defer_jobs('resize',
    ARRAY['{"img": 3}', '{"img": 1}', '{"img": 2}']::jsonb[],
    queue => 'images', priority => 4, max_attempts => 2);
SELECT id, ord FROM procq.defer_jobs('ordered',
    ARRAY['{"i": 1}', '{"i": 2}', '{"i": 3}', '{"i": 4}']::jsonb[]) WITH ORDINALITY AS t(id, ord);
TABLE state;
-- scheduled for later: delayed, not fetchable
SELECT * FROM procq.defer_jobs('later', ARRAY['{}', '{}']::jsonb[],
    scheduled_at => now() + interval '1 day');
SELECT id, status, delayed FROM procq.jobs WHERE task = 'later' ORDER BY id;
-- the ready ones can be fetched in args order
SELECT id, args FROM procq.fetch_jobs(3, tasks => ARRAY['ordered']);

------------------------------------------------------------------------
-- A fan-out: every job depends on every parent.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('todo parent') AS id;                                -- 1
SELECT procq.defer('done parent') AS id;                                -- 2
SELECT id FROM procq.fetch_job(tasks => ARRAY['done parent']);
SELECT procq.finish_job(2, 'succeeded');
SELECT * FROM procq.defer_jobs('fan', ARRAY['{"k": 1}', '{"k": 2}', '{"k": 3}']::jsonb[],
    depends_on => ARRAY[2, 1, 1]);
SELECT job_id, depends_on FROM procq.job_dependencies ORDER BY 1, 2;
TABLE state;
-- the todo parent succeeds: all are released
SELECT id FROM procq.fetch_job(tasks => ARRAY['todo parent']);
SELECT procq.finish_job(1, 'succeeded');
SELECT id, status, pending_parents FROM procq.jobs WHERE task = 'fan' ORDER BY id;

-- A failed or cancelled parent: the jobs are inserted cancelled, blamed on
-- the lowest such parent.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('fails') AS id;                                      -- 1
SELECT procq.defer('cancelled') AS id;                                  -- 2
SELECT procq.defer('waiting') AS id;                                    -- 3
SELECT id FROM procq.fetch_job(tasks => ARRAY['fails']);
SELECT procq.finish_job(1, 'failed');
SELECT procq.cancel_job(2);
SELECT * FROM procq.defer_jobs('doomed', ARRAY['{}', '{}']::jsonb[], depends_on => ARRAY[3, 2]);
SELECT * FROM procq.defer_jobs('doomed too', ARRAY['{}']::jsonb[], depends_on => ARRAY[3, 2, 1]);
SELECT id, task, status, pending_parents, cancelled_by, error,
       finished_at IS NOT NULL AS finished
  FROM procq.jobs WHERE id > 3 ORDER BY id;

------------------------------------------------------------------------
-- A lock: the first job heads the queue, the others wait in id order.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT * FROM procq.defer_jobs('locked', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[],
    lock => 'L');
SELECT id, lock_blocked FROM procq.jobs ORDER BY id;
SELECT id FROM procq.fetch_jobs(10);
-- a busy queue: all new jobs wait
SELECT * FROM procq.defer_jobs('locked later', ARRAY['{}', '{}']::jsonb[], lock => 'L');
SELECT id, lock_blocked FROM procq.jobs ORDER BY id;
SELECT procq.finish_job(1, 'succeeded');
SELECT id, task, args FROM procq.fetch_jobs(10);

------------------------------------------------------------------------
-- Bad input: nothing inserted.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('parent') AS id;                                     -- 1
TABLE counts;
SELECT * FROM procq.defer_jobs('t', ARRAY['{}', NULL, '{}']::jsonb[]);
SELECT * FROM procq.defer_jobs('t', ARRAY['{}', NULL]::jsonb[], depends_on => ARRAY[1]);
SELECT * FROM procq.defer_jobs('t', NULL);
SELECT * FROM procq.defer_jobs(NULL, ARRAY['{}']::jsonb[]);
SELECT * FROM procq.defer_jobs('', ARRAY['{}']::jsonb[]);
SELECT * FROM procq.defer_jobs('t', ARRAY['{}']::jsonb[], queue => '');
SELECT * FROM procq.defer_jobs('t', ARRAY['{}']::jsonb[], queue => NULL);
SELECT * FROM procq.defer_jobs('t', ARRAY['{}']::jsonb[], max_attempts => 0);
SELECT * FROM procq.defer_jobs('t', ARRAY['{}']::jsonb[], lock => '');
SELECT * FROM procq.defer_jobs('t', ARRAY['{}', '{}']::jsonb[], depends_on => ARRAY[1, 42]);
SELECT * FROM procq.defer_jobs('t', ARRAY['{}']::jsonb[], depends_on => ARRAY[1, NULL]);
TABLE counts;
-- an empty array inserts nothing
SELECT * FROM procq.defer_jobs('t', ARRAY[]::jsonb[]);
SELECT * FROM procq.defer_jobs('t', '{}');
TABLE counts;
-- the ids go on where they were (failed calls used none up)
SELECT * FROM procq.defer_jobs('after', ARRAY['{}']::jsonb[]);
