-- stalled.sql: leases of doing jobs.
--  - heartbeat extends a doing job's lease by procq.lease_duration from now
--    and returns the new expiry; it is an error for a job that is not doing.
--    It never shortens a lease: with a shorter procq.lease_duration than
--    the lease left, the lease stays as it is and is returned.
--  - recover_stalled puts doing jobs whose lease ran out back to todo, or
--    to failed when they have no attempts left (failed cascades to the
--    children and passes a lock on); jobs whose lease has not run out are
--    left alone.  It returns how many jobs it recovered.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

------------------------------------------------------------------------
-- heartbeat
SET procq.lease_duration = '1min';
SELECT procq.defer('long-task') AS id;
SELECT id, lease_expires_at > now() AS leased,
       lease_expires_at <= now() + interval '2 minutes' AS for_a_minute
  FROM procq.fetch_job();
SET procq.lease_duration = '1h';
SELECT procq.heartbeat(1) AS new_expiry \gset
SELECT :'new_expiry'::timestamptz > now() + interval '59 minutes' AS extended_by_an_hour,
       lease_expires_at = :'new_expiry'::timestamptz AS stored
  FROM procq.jobs WHERE id = 1;
-- a shorter lease_duration does not shorten the lease
SET procq.lease_duration = '1s';
SELECT procq.heartbeat(1) = :'new_expiry'::timestamptz AS kept;
SELECT lease_expires_at = :'new_expiry'::timestamptz AS stored
  FROM procq.jobs WHERE id = 1;
SET procq.lease_duration = '1h';
-- not doing: todo, succeeded, or missing
SELECT procq.defer('waiting') AS id;
SELECT procq.heartbeat(2);
SELECT procq.finish_job(1, 'succeeded');
SELECT procq.heartbeat(1);
SELECT procq.heartbeat(999);
SELECT id, status, lease_expires_at FROM procq.jobs ORDER BY id;

------------------------------------------------------------------------
-- recover_stalled
--   1 doing, attempts left, lease expired       -> todo
--   2 doing, last attempt, lease expired        -> failed; child 3 cancelled
--   4 doing, lease still running                -> untouched
--   5 todo                                      -> untouched
--   6 doing with lock L, last attempt, expired  -> failed; 7 (lock L) starts
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SET procq.lease_duration = '5min';
SELECT procq.defer('retryable', max_attempts => 2) AS id;
SELECT procq.defer('last-try') AS id;
SELECT procq.defer('child-of-last-try', queue => 'children', depends_on => '{2}') AS id;
SELECT procq.defer('healthy') AS id;
SELECT procq.defer('not-started', queue => 'later') AS id;
SELECT procq.defer('L-holder', lock => 'L') AS id;
SELECT procq.defer('L-next', lock => 'L', queue => 'later') AS id;
SELECT id, worker FROM procq.fetch_job(ARRAY['default'], worker => 'w-1');
SELECT id, worker FROM procq.fetch_job(ARRAY['default'], worker => 'w-2');
SELECT id, worker FROM procq.fetch_job(ARRAY['default'], worker => 'w-4');
SELECT id, worker FROM procq.fetch_job(ARRAY['default'], worker => 'w-6');
-- the workers of 1, 2 and 6 stopped answering long ago
UPDATE procq.jobs SET lease_expires_at = now() - interval '1 minute'
 WHERE id IN (1, 2, 6);
CREATE TEMP VIEW state AS
    SELECT id, task, status, attempts, lock_blocked,
           lease_expires_at IS NOT NULL AS leased,
           finished_at IS NOT NULL AS finished, cancelled_by,
           CASE WHEN error LIKE 'lease expired at % on worker w-_'
                THEN 'lease expired at <time> on worker ' || worker
                ELSE error END AS error
      FROM procq.jobs ORDER BY id;
TABLE state;
SELECT procq.recover_stalled();
TABLE state;
-- nothing more to recover
SELECT procq.recover_stalled();
-- 1 is fetched again for its second attempt, 7 got the lock
SELECT id, attempts FROM procq.fetch_job(ARRAY['default']);
SELECT id, task FROM procq.fetch_job(ARRAY['later']);
SELECT id, task FROM procq.fetch_job(ARRAY['later']);
SELECT id FROM procq.fetch_job(ARRAY['children']);

-- A recovered job with a lock and attempts left keeps its place at the
-- head of the lock queue.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('M-first', lock => 'M', max_attempts => 2) AS id;
SELECT procq.defer('M-second', lock => 'M') AS id;
SELECT id FROM procq.fetch_job();
UPDATE procq.jobs SET lease_expires_at = now() - interval '1 minute' WHERE id = 1;
SELECT procq.recover_stalled();
SELECT id, status, attempts, lock_blocked FROM procq.jobs ORDER BY id;
SELECT id, attempts FROM procq.fetch_job();
