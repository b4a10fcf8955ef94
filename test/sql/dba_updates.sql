-- dba_updates.sql: the DBA path.  "UPDATE procq.jobs SET status =
-- 'cancelled' (or 'failed'), finished_at = now()" must work for any live
-- job and cascade like the API, whatever procq's own bookkeeping columns
-- (delayed, lock_blocked, lease_expires_at) hold at that moment: those are
-- kept by procq, not by the DBA.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

--   1 later (scheduled in an hour) -> 2 child
--   3 L-1, 4 L-2 (same lock, waits for L-1) -> 5 child
--   6 running (doing) -> 7 child
SELECT procq.defer('later', scheduled_at => now() + interval '1 hour') AS id;
SELECT procq.defer('child', queue => 'children', depends_on => '{1}') AS id;
SELECT procq.defer('L-1', lock => 'L', queue => 'locked') AS id;
SELECT procq.defer('L-2', lock => 'L', queue => 'locked') AS id;
SELECT procq.defer('child', queue => 'children', depends_on => '{4}') AS id;
SELECT procq.defer('running') AS id;
SELECT procq.defer('child', queue => 'children', depends_on => '{6}') AS id;
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT id, task, status, delayed, lock_blocked, lease_expires_at IS NOT NULL AS leased
  FROM procq.jobs ORDER BY id;

-- a job scheduled for later
UPDATE procq.jobs SET status = 'cancelled', finished_at = now() WHERE id = 1;
-- a job waiting for its lock
UPDATE procq.jobs SET status = 'cancelled', finished_at = now() WHERE id = 4;
-- a doing job
UPDATE procq.jobs SET status = 'failed', finished_at = now() WHERE id = 6;

-- all three ended, their children were cancelled, and nothing of them
-- can be fetched; L-1 still holds the lock alone
SELECT id, task, status, cancelled_by, error FROM procq.jobs ORDER BY id;
SELECT id FROM procq.fetch_job(ARRAY['default', 'children']);
SELECT id, task FROM procq.fetch_job(ARRAY['locked']);
SELECT id, task FROM procq.fetch_job(ARRAY['locked']);

-- finished_at may be left out: the status trigger fills it in
SELECT procq.defer('plain') AS id;
UPDATE procq.jobs SET status = 'cancelled' WHERE id = 8;
SELECT id, status, finished_at IS NOT NULL AS finished FROM procq.jobs WHERE id = 8;

-- a DBA requeue of the failed job 6: back to todo with fresh attempts, and
-- its child 7, cancelled because of it, waits for it again
UPDATE procq.jobs SET status = 'todo' WHERE id = 6;
SELECT id, status, attempts, pending_parents, cancelled_by, error,
       finished_at IS NULL AS unfinished
  FROM procq.jobs WHERE id IN (6, 7) ORDER BY id;
