-- purge.sql: procq.purge(older_than), the deletion that procq.retention
-- runs in the background workers.
--  - It deletes the succeeded, failed and cancelled jobs that finished
--    more than older_than ago, keeps recent ones and live ones, and returns
--    how many it deleted.
--  - It never deletes a job that another job still depends on: a succeeded
--    parent whose child waits on another parent stays (the child then runs
--    with the parent's result); so does a parent of a doing child, or of a
--    finished child that is not old yet (retry_job of that child needs its
--    parents).  Once every child is gone, the parent goes: children first,
--    in the same call when they are old too.  Chains and fan-outs larger
--    than one batch (1,000 jobs) go in one call.
--  - Deleting never changes other jobs: no child is released or
--    cancelled, lock queues stay as they were.
--  - NULL or a negative older_than is 22023; without DELETE on procq.jobs
--    it is 42501; and then nothing changes.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_procq_purger;
DROP ROLE IF EXISTS regress_procq_admin;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

CREATE TEMP VIEW state AS
    SELECT id, task, status, pending_parents FROM procq.jobs ORDER BY id;

-- run(queue, outcome): fetch the job of a queue and finish it.
CREATE FUNCTION pg_temp.run(q text, outcome procq.job_status) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    j bigint;
BEGIN
    SELECT id INTO STRICT j FROM procq.fetch_job(ARRAY[q]);
    PERFORM procq.finish_job(j, outcome,
        CASE WHEN outcome = 'succeeded' THEN jsonb_build_object('from', j) END);
    RETURN j;
END
$$;
-- outcome(stmt): 'ok', or the SQLSTATE and message of its error.
CREATE FUNCTION pg_temp.outcome(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- age(ids): these jobs finished ten days earlier than they did.
CREATE FUNCTION pg_temp.age(ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE procq.jobs SET finished_at = finished_at - interval '10 days' WHERE id = ANY(ids)
$$;

------------------------------------------------------------------------
-- Old finished jobs go, recent and live ones stay.
--   1 old succeeded, 2 old failed, 3 old cancelled, 4 recent succeeded,
--   5 todo, 6 doing
SELECT procq.defer('old-ok', queue => 'a') AS id;
SELECT procq.defer('old-failed', queue => 'b') AS id;
SELECT procq.defer('old-cancelled') AS id;
SELECT procq.defer('recent-ok', queue => 'c') AS id;
SELECT procq.defer('todo', queue => 'e') AS id;
SELECT procq.defer('doing', queue => 'f') AS id;
SELECT pg_temp.run('a', 'succeeded'), pg_temp.run('b', 'failed'), procq.cancel_job(3),
       pg_temp.run('c', 'succeeded');
SELECT id FROM procq.fetch_job(ARRAY['f']);
-- a todo or doing job is never finished, so never purged; make them look
-- old anyway
UPDATE procq.jobs SET created_at = created_at - interval '10 days';
SELECT pg_temp.age('{1,2,3}');
TABLE state;
SELECT procq.purge('1 day') AS purged;
TABLE state;
-- nothing left to purge: 0
SELECT procq.purge('1 day') AS purged;
-- interval '0': everything that finished before this transaction began
SELECT procq.purge('0') AS purged;
TABLE state;

------------------------------------------------------------------------
-- A succeeded parent whose child still waits on another parent stays, and
-- the child runs with its result.
--   1 p1 (succeeded, old), 2 p2 (todo) -> 3 child of both
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p1', queue => 'p1') AS id;
SELECT procq.defer('p2', queue => 'p2') AS id;
SELECT procq.defer('child', queue => 'child', depends_on => '{1,2}') AS id;
SELECT pg_temp.run('p1', 'succeeded');
SELECT pg_temp.age('{1}');
SELECT procq.purge('1 day') AS purged;
TABLE state;
-- p2 succeeds and becomes old: still no purge while the child is todo ...
SELECT pg_temp.run('p2', 'succeeded');
SELECT pg_temp.age('{2}');
SELECT procq.purge('1 day') AS purged;
-- ... or doing; its handler still sees both results
SELECT id FROM procq.fetch_job(ARRAY['child']);
SELECT procq.purge('1 day') AS purged;
SELECT procq.parent_results(3);
-- the child fails and is retried: it goes back to todo, parents intact
SELECT procq.finish_job(3, 'failed', error => 'flaky');
SELECT procq.purge('1 day') AS purged;
SELECT procq.retry_job(3);
SELECT procq.parent_results(3);
-- the child succeeds: it is recent, so its parents stay with it
SELECT pg_temp.run('child', 'succeeded');
SELECT procq.purge('1 day') AS purged;
TABLE state;
-- once the child is old too, all three go in one call, child first
SELECT pg_temp.age('{3}');
SELECT procq.purge('1 day') AS purged;
TABLE state;
SELECT count(*) AS dependency_rows FROM procq.job_dependencies;

------------------------------------------------------------------------
-- Deleting changes nothing for the jobs that stay: a failed parent and
-- the children it cancelled go together, children first; a cancelled
-- child that is recent keeps its old failed parent (retry_job of the
-- parent would requeue it).
--   1 f1 (failed, old) -> 2 (cancelled by 1, old)
--   3 f2 (failed, old) -> 4 (cancelled by 3, recent)
--   5 old succeeded job with lock L, 6 doing with lock L, 7 todo behind
--   lock L
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('f1', queue => 'f1') AS id;
SELECT procq.defer('c1', depends_on => '{1}') AS id;
SELECT procq.defer('f2', queue => 'f2') AS id;
SELECT procq.defer('c2', depends_on => '{3}') AS id;
SELECT procq.defer('l-old', queue => 'l-old', lock => 'L') AS id;
SELECT pg_temp.run('l-old', 'succeeded');
SELECT procq.defer('l-doing', queue => 'l-doing', lock => 'L') AS id;
SELECT procq.defer('l-todo', queue => 'l-todo', lock => 'L') AS id;
SELECT id FROM procq.fetch_job(ARRAY['l-doing']);
SELECT pg_temp.run('f1', 'failed'), pg_temp.run('f2', 'failed');
SELECT pg_temp.age('{1,2,3,5}');
SELECT id, task, status, lock_blocked, cancelled_by FROM procq.jobs ORDER BY id;
SELECT procq.purge('1 day') AS purged;
SELECT id, task, status, lock_blocked, cancelled_by FROM procq.jobs ORDER BY id;
-- the lock queue goes on as before
SELECT procq.finish_job(6, 'succeeded');
SELECT id, task FROM procq.fetch_job(ARRAY['l-todo']);
-- retry of f2 still requeues its cancelled child
SELECT procq.retry_job(3);
SELECT id, task, status, pending_parents FROM procq.jobs WHERE id IN (3, 4) ORDER BY id;

------------------------------------------------------------------------
-- Chains and fan-outs: larger than one batch of 1,000, in one call.
--   1 -> 2 -> ... -> 30 (all succeeded, old): all go
--   31 -> 32 -> 33 where 33 is still todo: none goes
--   34 -> 2,500 children (all succeeded, old): all go
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT count(*) AS deferred FROM (
    SELECT procq.defer('chain', queue => 'chain', depends_on => CASE WHEN g > 1 THEN ARRAY[g - 1]::bigint[] END)
      FROM generate_series(1, 30) g) s;
SELECT count(pg_temp.run('chain', 'succeeded')) AS ran FROM generate_series(1, 30);
SELECT procq.defer('held', queue => 'held') AS id;
SELECT procq.defer('held', queue => 'held', depends_on => '{31}') AS id;
SELECT procq.defer('held-todo', queue => 'held-todo', depends_on => '{32}') AS id;
SELECT pg_temp.run('held', 'succeeded'), pg_temp.run('held', 'succeeded');
SELECT procq.defer('fan', queue => 'fan') AS id;
SELECT pg_temp.run('fan', 'succeeded');
SELECT count(procq.defer('leaf', queue => 'leaves', depends_on => '{34}')) AS leaves
  FROM generate_series(1, 2500);
UPDATE procq.jobs SET status = 'cancelled' WHERE task = 'leaf';
UPDATE procq.jobs SET finished_at = finished_at - interval '10 days'
 WHERE status IN ('succeeded', 'cancelled');
SELECT task, status, count(*) FROM procq.jobs GROUP BY 1, 2 ORDER BY 1, 2;
SELECT procq.purge('1 day') AS purged;
SELECT id, task, status FROM procq.jobs ORDER BY id;

------------------------------------------------------------------------
-- Bad input changes nothing.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('old', queue => 'old') AS id;
SELECT pg_temp.run('old', 'succeeded');
SELECT pg_temp.age('{1}');
SELECT pg_temp.outcome($$SELECT procq.purge(NULL)$$);
SELECT pg_temp.outcome($$SELECT procq.purge('-1 second')$$);
SELECT pg_temp.outcome($$SELECT procq.purge('1 month -40 days')$$);
-- (older than any timestamp)
SELECT pg_temp.outcome($$SELECT procq.purge('100000000 years')$$);
-- the messages in full
SELECT procq.purge(NULL);
SELECT procq.purge('-1 second');
SELECT count(*) AS jobs FROM procq.jobs;

------------------------------------------------------------------------
-- Privileges: EXECUTE is not enough, purge needs DELETE on procq.jobs;
-- and nothing is granted to PUBLIC.
CREATE ROLE regress_procq_purger;
GRANT USAGE ON SCHEMA procq TO regress_procq_purger;
SET ROLE regress_procq_purger;
SELECT pg_temp.outcome($$SELECT procq.purge('1 day')$$);
RESET ROLE;
-- EXECUTE on every function, as the README suggests for applications
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_procq_purger;
SET ROLE regress_procq_purger;
SELECT pg_temp.outcome($$SELECT procq.purge('1 day')$$);
SELECT procq.purge('1 day');
RESET ROLE;
SELECT count(*) AS jobs FROM procq.jobs;
CREATE ROLE regress_procq_admin;
GRANT USAGE ON SCHEMA procq TO regress_procq_admin;
GRANT EXECUTE ON FUNCTION procq.purge(interval) TO regress_procq_admin;
GRANT DELETE ON procq.jobs TO regress_procq_admin;
SET ROLE regress_procq_admin;
SELECT procq.purge('1 day') AS purged;
RESET ROLE;
SELECT count(*) AS jobs FROM procq.jobs;

DROP OWNED BY regress_procq_purger, regress_procq_admin;
DROP ROLE regress_procq_purger;
DROP ROLE regress_procq_admin;
