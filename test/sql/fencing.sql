-- fencing.sql: finish_job, heartbeat and finish_jobs with the attempt a
-- worker fetched (issue 8, fencing).
--  - the stale worker: A fetches a job, its lease runs out,
--    recover_stalled puts the job back, B fetches it again (attempt 2); A's
--    finish_job, heartbeat and finish_jobs with attempt 1 fail with PQ001
--    and change nothing: the child is not released while B runs; B
--    finishes with attempt 2 and releases it; A is still refused after
--    that (finished by someone else);
--  - a job put back and not fetched again, one failed for good by
--    recover_stalled: PQ001;
--  - a job aborted by cancel_job(abort => true): PQ002, with or without the
--    attempt;
--  - the right attempt works on every path (one statement, a lock, a
--    retry); without an attempt nothing changes (55000 for a job that is
--    not doing, P0002 for a missing one);
--  - finish_jobs: attempts[i] goes with job_ids[i], NULL elements are not
--    checked, a wrong length is 22023, one stale job fails the whole batch.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

-- runs a statement, returns its SQLSTATE and message (or ok)
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- the lease of a doing job runs out (as if its worker hung)
CREATE FUNCTION pg_temp.expire(id bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE procq.jobs SET lease_expires_at = clock_timestamp() - interval '1 second'
    WHERE jobs.id = expire.id AND status = 'doing';
$$;

------------------------------------------------------------------------
-- the stale worker
SELECT procq.defer('parent', max_attempts => 2) AS parent;
SELECT procq.defer('child', depends_on => ARRAY[1]) AS child;
SELECT id, attempts FROM procq.fetch_job(worker => 'A', tasks => ARRAY['parent']);
SELECT pg_temp.expire(1);
SELECT procq.recover_stalled() AS recovered;
SELECT id, attempts FROM procq.fetch_job(worker => 'B', tasks => ARRAY['parent']);
-- A comes back
SELECT pg_temp.try($$SELECT procq.finish_job(1, 'succeeded', '{"by": "A"}', attempt => 1)$$);
SELECT pg_temp.try($$SELECT procq.heartbeat(1, attempt => 1)$$);
SELECT pg_temp.try($$SELECT procq.finish_jobs(ARRAY[1], 'succeeded', attempts => ARRAY[1])$$);
SELECT pg_temp.try($$SELECT procq.finish_job(1, 'failed', error => 'A failed', attempt => 1)$$);
-- nothing changed: B runs the job, the child waits
SELECT id, status, attempts, worker, result, pending_parents FROM procq.jobs ORDER BY id;
-- B's heartbeat and finish, with its attempt
SELECT procq.heartbeat(1, attempt => 2) > now() AS leased;
SELECT procq.finish_job(1, 'succeeded', '{"by": "B"}', attempt => 2);
SELECT id, status, result, pending_parents FROM procq.jobs ORDER BY id;
-- A again: finished by someone else
SELECT pg_temp.try($$SELECT procq.finish_job(1, 'succeeded', attempt => 1)$$);
SELECT pg_temp.try($$SELECT procq.finish_job(1, 'succeeded', attempt => 2)$$);
SELECT pg_temp.try($$SELECT procq.heartbeat(1, attempt => 2)$$);
-- without an attempt, as before
SELECT pg_temp.try($$SELECT procq.finish_job(1, 'succeeded')$$);
SELECT pg_temp.try($$SELECT procq.heartbeat(1)$$);

------------------------------------------------------------------------
-- put back and not fetched again; failed for good by recover_stalled
SELECT procq.defer('back', max_attempts => 3) AS back;
SELECT procq.defer('gone') AS gone;
SELECT id, attempts FROM procq.fetch_job(worker => 'A', tasks => ARRAY['back']);
SELECT id, attempts FROM procq.fetch_job(worker => 'A', tasks => ARRAY['gone']);
SELECT pg_temp.expire(3), pg_temp.expire(4);
SELECT procq.recover_stalled() AS recovered;
SELECT pg_temp.try($$SELECT procq.finish_job(3, 'succeeded', attempt => 1)$$);
SELECT pg_temp.try($$SELECT procq.heartbeat(3, attempt => 1)$$);
SELECT pg_temp.try($$SELECT procq.finish_job(4, 'succeeded', attempt => 1)$$);
SELECT id, status, attempts, error IS NOT NULL AS has_error FROM procq.jobs WHERE id IN (3, 4) ORDER BY id;

------------------------------------------------------------------------
-- aborted by cancel_job(abort => true)
SELECT procq.defer('abort-me') AS aborted;
SELECT id, attempts FROM procq.fetch_job(worker => 'A', tasks => ARRAY['abort-me']);
SELECT procq.cancel_job(5, abort => true);
SELECT pg_temp.try($$SELECT procq.finish_job(5, 'succeeded', attempt => 1)$$);
SELECT pg_temp.try($$SELECT procq.heartbeat(5, attempt => 1)$$);
SELECT pg_temp.try($$SELECT procq.finish_jobs(ARRAY[5], 'failed', attempts => ARRAY[1])$$);
SELECT pg_temp.try($$SELECT procq.finish_job(5, 'succeeded')$$);
SELECT pg_temp.try($$SELECT procq.heartbeat(5)$$);
SELECT pg_temp.try($$SELECT procq.finish_jobs(ARRAY[5], 'failed')$$);
-- with a stale attempt: the job was taken from this caller before
SELECT pg_temp.try($$SELECT procq.finish_job(5, 'succeeded', attempt => 7)$$);
-- a job cancelled while todo (put back first) is a lost lease, not an abort
SELECT id, attempts FROM procq.fetch_job(worker => 'A', tasks => ARRAY['back']);
SELECT pg_temp.expire(3);
SELECT procq.recover_stalled() AS recovered;
SELECT procq.cancel_job(3);
SELECT pg_temp.try($$SELECT procq.finish_job(3, 'succeeded', attempt => 2)$$);
SELECT pg_temp.try($$SELECT procq.finish_job(3, 'succeeded')$$);
SELECT id, status, error FROM procq.jobs WHERE id IN (3, 5) ORDER BY id;

------------------------------------------------------------------------
-- the right attempt on every path: one statement, a lock, a retry
SELECT procq.defer('plain') AS plain, procq.defer('locked', lock => 'L') AS locked,
       procq.defer('retried', max_attempts => 2) AS retried;
SELECT id, attempts FROM procq.fetch_job(worker => 'A', tasks => ARRAY['plain']);
SELECT id, attempts FROM procq.fetch_job(worker => 'A', tasks => ARRAY['locked']);
SELECT id, attempts FROM procq.fetch_job(worker => 'A', tasks => ARRAY['retried']);
SELECT pg_temp.try($$SELECT procq.finish_job(6, 'succeeded', attempt => 2)$$);
SELECT pg_temp.try($$SELECT procq.finish_job(7, 'succeeded', attempt => 2)$$);
SELECT pg_temp.try($$SELECT procq.finish_job(8, 'failed', attempt => 0)$$);
SELECT pg_temp.try($$SELECT procq.heartbeat(7, attempt => 0)$$);
SELECT procq.finish_job(6, 'succeeded', attempt => 1),
       procq.finish_job(7, 'succeeded', attempt => 1),
       procq.finish_job(8, 'failed', error => 'first', attempt => 1);
SELECT id, attempts FROM procq.fetch_job(worker => 'A', tasks => ARRAY['retried']);
SELECT pg_temp.try($$SELECT procq.finish_job(8, 'failed', attempt => 1)$$);
SELECT procq.finish_job(8, 'failed', error => 'second', attempt => 2);
SELECT id, status, attempts, error FROM procq.jobs WHERE id IN (6, 7, 8) ORDER BY id;
-- a missing job is still P0002, with or without an attempt
SELECT pg_temp.try($$SELECT procq.finish_job(99, 'succeeded', attempt => 1)$$);
SELECT pg_temp.try($$SELECT procq.heartbeat(99, attempt => 1)$$);
SELECT pg_temp.try($$SELECT procq.finish_jobs(ARRAY[99], 'succeeded', attempts => ARRAY[1])$$);

------------------------------------------------------------------------
-- finish_jobs with attempts
SELECT count(*) FROM procq.defer_jobs('batch', array_fill('{}'::jsonb, ARRAY[3]), max_attempts => 2);
SELECT array_agg(id ORDER BY id) AS ids, array_agg(attempts ORDER BY id) AS attempts
  FROM procq.fetch_jobs(3, worker => 'A', tasks => ARRAY['batch']);
SELECT pg_temp.try($$SELECT procq.finish_jobs(ARRAY[9, 10, 11], 'succeeded', attempts => ARRAY[1, 1])$$);
-- job 10 is taken again by B: a batch with A's attempt for it fails whole
SELECT pg_temp.expire(10);
SELECT procq.recover_stalled() AS recovered;
SELECT id, attempts FROM procq.fetch_job(worker => 'B', tasks => ARRAY['batch']);
SELECT pg_temp.try($$SELECT procq.finish_jobs(ARRAY[9, 10, 11], 'succeeded', attempts => ARRAY[1, 1, 1])$$);
SELECT id, status, attempts, worker FROM procq.jobs WHERE id IN (9, 10, 11) ORDER BY id;
-- NULL elements are not checked; the right attempts work
SELECT * FROM procq.finish_jobs(ARRAY[9, 10, 11], 'succeeded', attempts => ARRAY[NULL, 2, 1]);
SELECT id, status FROM procq.jobs WHERE id IN (9, 10, 11) ORDER BY id;
