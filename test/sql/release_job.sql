-- release_job.sql: procq.release_job(job_id, attempt), what an external
-- worker calls on SIGTERM for the jobs it has not finished (issue 10).
--  - a doing job goes back to todo at once, its attempt not counted
--    (attempts one lower), no worker, start or lease, no error stored (an
--    earlier attempt's error stays), its children still waiting, ready
--    again; a job with max_attempts 1 can be released any number of times
--    and still has its attempt;
--  - errors as finish_job: P0002, 42501, 55000 when not doing (without
--    attempt), PQ001 with an attempt that is not current, PQ002 when it was
--    aborted (with the attempt or without), 22004 for a NULL job_id;
--  - a lock queue: the released job keeps its place (the others stay
--    blocked and it is fetched again first); when a lower id of its lock
--    was retried while it ran, that one heads the queue now;
--  - a queueing_lock another todo job took while it ran: the job cannot go
--    back to todo; it ends failed, saying why (never silently), its
--    children are cancelled, and retry_job requeues it once that other job
--    has started;
--  - a job scheduled for later is ready at once when released (it was due
--    when it was fetched).
-- NOTIFY and races: test/isolation/specs/release_job_race.spec.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
DROP ROLE IF EXISTS regress_release_alice;
DROP ROLE IF EXISTS regress_release_bob;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
CREATE VIEW pg_temp.state AS
    SELECT id, task, status, attempts, max_attempts, worker IS NOT NULL AS has_worker,
           started_at IS NOT NULL AS started, lease_expires_at IS NOT NULL AS leased,
           finished_at IS NOT NULL AS finished, lock_blocked, delayed, pending_parents,
           error
    FROM procq.jobs ORDER BY id;

------------------------------------------------------------------------
-- a doing job goes back to todo, its attempt not counted
SELECT procq.defer('parent') AS parent;                          -- 1
SELECT procq.defer('child', depends_on => ARRAY[1]) AS child;    -- 2
SELECT id, attempts, worker FROM procq.fetch_job(worker => 'w1');
SELECT procq.release_job(1, attempt => 1);
SELECT * FROM pg_temp.state;
-- ready again, fetched in attempt 1 again; and again without an attempt
SELECT id, attempts FROM procq.fetch_job(worker => 'w2');
SELECT procq.release_job(1);
SELECT id, attempts FROM procq.fetch_job(worker => 'w3');
-- max_attempts 1: still its one attempt; the child waited all along
SELECT procq.finish_job(1, 'succeeded', attempt => 1);
SELECT id, status, attempts, pending_parents FROM procq.jobs ORDER BY id;

-- an earlier failed attempt's error stays, no error is stored
SELECT procq.defer('flaky', max_attempts => 3) AS flaky;         -- 3
SELECT id, attempts FROM procq.fetch_job(tasks => '{flaky}');
SELECT procq.finish_job(3, 'failed', error => 'boom', attempt => 1);
SELECT id, attempts FROM procq.fetch_job(tasks => '{flaky}');
SELECT procq.release_job(3, 2);
SELECT * FROM pg_temp.state WHERE id = 3;
SELECT id, attempts FROM procq.fetch_job(tasks => '{flaky}');
SELECT procq.finish_job(3, 'failed', error => 'boom again', attempt => 2);
SELECT id, attempts FROM procq.fetch_job(tasks => '{flaky}');
SELECT procq.finish_job(3, 'failed', error => 'boom for good', attempt => 3);
SELECT id, status, attempts, error FROM procq.jobs WHERE id = 3;

------------------------------------------------------------------------
-- errors, and nothing changes
SELECT pg_temp.try($$SELECT procq.release_job(999)$$);
SELECT pg_temp.try($$SELECT procq.release_job(NULL)$$);
SELECT procq.defer('idle') AS idle;                              -- 4
SELECT pg_temp.try($$SELECT procq.release_job(4)$$);             -- todo
SELECT pg_temp.try($$SELECT procq.release_job(4, 1)$$);          -- todo, with an attempt
SELECT pg_temp.try($$SELECT procq.release_job(1)$$);             -- succeeded
SELECT pg_temp.try($$SELECT procq.release_job(3)$$);             -- failed
-- a stale attempt: the job was put back and fetched again
SELECT id, attempts FROM procq.fetch_job(tasks => '{idle}', worker => 'A');
UPDATE procq.jobs SET lease_expires_at = clock_timestamp() - interval '1 second' WHERE id = 4;
SELECT procq.recover_stalled();
SELECT pg_temp.try($$SELECT procq.release_job(4, 1)$$);          -- put back, not fetched
SELECT id, status FROM procq.jobs WHERE id = 4;                  -- failed: no attempt left
SELECT procq.retry_job(4);
SELECT id, attempts FROM procq.fetch_job(tasks => '{idle}', worker => 'B');
UPDATE procq.jobs SET max_attempts = 2 WHERE id = 4;
UPDATE procq.jobs SET lease_expires_at = clock_timestamp() - interval '1 second' WHERE id = 4;
SELECT procq.recover_stalled();
SELECT id, attempts FROM procq.fetch_job(tasks => '{idle}', worker => 'C');
SELECT pg_temp.try($$SELECT procq.release_job(4, 1)$$);          -- C runs it in attempt 2
SELECT id, status, attempts, has_worker, started, leased FROM pg_temp.state WHERE id = 4;
SELECT procq.release_job(4, 2);                                  -- C may
SELECT id, status, attempts, has_worker, started, leased, error LIKE 'lease expired at %' AS old_error
FROM pg_temp.state WHERE id = 4;
-- aborted: PQ002 with the attempt or without
SELECT id, attempts FROM procq.fetch_job(tasks => '{idle}', worker => 'D');
SELECT procq.cancel_job(4, abort => true);
SELECT pg_temp.try($$SELECT procq.release_job(4, 2)$$);
SELECT pg_temp.try($$SELECT procq.release_job(4)$$);
SELECT pg_temp.try($$SELECT procq.release_job(4, 1)$$);          -- an older attempt: PQ001
SELECT id, status, attempts, error FROM procq.jobs WHERE id = 4;

-- another role's job: 42501, as finish_job
CREATE ROLE regress_release_alice;
CREATE ROLE regress_release_bob;
GRANT USAGE ON SCHEMA procq TO regress_release_alice, regress_release_bob;
GRANT EXECUTE ON FUNCTION procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text, text, bigint),
    procq.fetch_job(text[], text, text[]), procq.release_job(bigint, integer)
    TO regress_release_alice, regress_release_bob;
SET ROLE regress_release_alice;
SELECT procq.defer('alice''s') AS alices;                        -- 5
SELECT id, attempts FROM procq.fetch_job(tasks => '{alice''s}');
SET ROLE regress_release_bob;
SELECT pg_temp.try($$SELECT procq.release_job(5)$$);
SET ROLE regress_release_alice;
SELECT procq.release_job(5, 1);
RESET ROLE;
SELECT id, status, attempts FROM procq.jobs WHERE id = 5;
DELETE FROM procq.jobs WHERE id = 5;

------------------------------------------------------------------------
-- a lock queue: the released job keeps its place
SELECT procq.defer('locked', lock => 'L') AS l1;                 -- 6
SELECT procq.defer('locked', lock => 'L') AS l2;                 -- 7
SELECT id FROM procq.fetch_job(tasks => '{locked}');
SELECT id FROM procq.fetch_job(tasks => '{locked}');             -- none: 7 waits for 6
SELECT procq.release_job(6);
SELECT id, status, attempts, lock_blocked FROM procq.jobs WHERE id IN (6, 7) ORDER BY id;
SELECT id FROM procq.fetch_job(tasks => '{locked}');             -- 6 again, not 7
SELECT procq.finish_job(6, 'succeeded');
SELECT id FROM procq.fetch_job(tasks => '{locked}');             -- 7
-- a lower id of the lock retried while 7 ran heads the queue once 7 is released
SELECT procq.defer('locked early', lock => 'M') AS m1;           -- 8
SELECT id FROM procq.fetch_job(tasks => '{locked early}');
SELECT procq.finish_job(8, 'failed');
SELECT procq.defer('locked late', lock => 'M') AS m2;            -- 9
SELECT id FROM procq.fetch_job(tasks => '{locked late}');
SELECT procq.retry_job(8);
SELECT id, status, lock_blocked FROM procq.jobs WHERE id IN (8, 9) ORDER BY id;
SELECT procq.release_job(9);
SELECT id, status, lock_blocked FROM procq.jobs WHERE id IN (8, 9) ORDER BY id;
SELECT id FROM procq.fetch_job(tasks => '{locked early,locked late}');   -- 8
SELECT procq.finish_job(8, 'succeeded');
SELECT procq.finish_job(7, 'succeeded');
SELECT id, status, lock_blocked FROM procq.jobs WHERE id IN (8, 9) ORDER BY id;

------------------------------------------------------------------------
-- a queueing_lock taken by another todo job while the job ran
SELECT procq.defer('dedup', queueing_lock => 'Q', max_attempts => 3) AS q1;   -- 10
SELECT procq.defer('after dedup', depends_on => ARRAY[10]) AS q1_child;      -- 11
SELECT id FROM procq.fetch_job(tasks => '{dedup}');
SELECT procq.defer('dedup', queueing_lock => 'Q') AS q2;                      -- 12
SELECT pg_temp.try($$SELECT procq.release_job(10, 1)$$);
SELECT id, status, attempts, finished_at IS NOT NULL AS finished, error, cancelled_by
FROM procq.jobs WHERE id IN (10, 11, 12) ORDER BY id;
-- once 12 has started, 10 can be retried (with its child)
SELECT pg_temp.try($$SELECT procq.retry_job(10)$$);
SELECT id FROM procq.fetch_job(tasks => '{dedup}');
SELECT procq.retry_job(10);
SELECT id, status, attempts, error FROM procq.jobs WHERE id IN (10, 11, 12) ORDER BY id;
-- without a holder, a job with a queueing_lock goes back to todo
SELECT procq.finish_job(12, 'succeeded');
SELECT id FROM procq.fetch_job(tasks => '{dedup}');
SELECT procq.release_job(10);
SELECT id, status, attempts, queueing_lock FROM procq.jobs WHERE id = 10;

------------------------------------------------------------------------
-- a job scheduled for later is ready at once when released
SELECT procq.defer('later', scheduled_at => now() + interval '1 hour') AS later \gset
UPDATE procq.jobs SET scheduled_at = now() - interval '1 second' WHERE id = :later;
SELECT id FROM procq.fetch_job(tasks => '{later}');
SELECT procq.release_job(:later);
SELECT status, attempts, delayed, scheduled_at < now() AS due,
       (SELECT count(*) FROM procq.jobs j WHERE j.id = :later AND j.status = 'todo'
          AND j.pending_parents = 0 AND NOT j.lock_blocked AND NOT j.delayed) AS ready
FROM procq.jobs WHERE id = :later;

DROP VIEW pg_temp.state;
DROP EXTENSION procq CASCADE;
DROP OWNED BY regress_release_alice, regress_release_bob;
DROP ROLE regress_release_alice;
DROP ROLE regress_release_bob;
