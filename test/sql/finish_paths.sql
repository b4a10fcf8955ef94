-- finish_paths.sql: finish_job ends a job the same way whichever of its two
-- paths it takes (one statement for a doing job without a lock that is not
-- retried; the general path for a lock, a retry, an error), and fetches
-- still promote due jobs when they skip the promoting UPDATE otherwise.
--  - succeeded, cancelled, and failed without attempts left (one
--    statement) set result, error, finished_at, clear the lease, keep
--    scheduled_at, as the general path does for a job with a lock;
--  - a job that is not doing, or does not exist, is still refused (55000,
--    02000) and nothing changes;
--  - failed with attempts left is retried (general path);
--  - a scheduled job that falls due is fetched.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
\set SHOW_CONTEXT never
SET procq.retry_delay = 0;

-- 1-3 without a lock, 4-6 with one (each its own lock queue), 7 retried
SELECT procq.defer('t', jsonb_build_object('n', n), lock => CASE WHEN n > 3 THEN 'l' || n END,
                   max_attempts => CASE WHEN n = 7 THEN 2 ELSE 1 END)
FROM generate_series(1, 7) n;
DO $$
BEGIN
    FOR i IN 1..7 LOOP
        PERFORM procq.fetch_job(worker => 'w');
    END LOOP;
END
$$;
SELECT count(*) AS doing FROM procq.jobs WHERE status = 'doing';

SELECT procq.finish_job(1, 'succeeded', '{"r": 1}'),
       procq.finish_job(2, 'cancelled', error => 'stop'),
       procq.finish_job(3, 'failed', error => 'boom'),
       procq.finish_job(4, 'succeeded', '{"r": 1}'),
       procq.finish_job(5, 'cancelled', error => 'stop'),
       procq.finish_job(6, 'failed', error => 'boom'),
       procq.finish_job(7, 'failed', error => 'again');

SELECT id, status, result, error, attempts, lease_expires_at, delayed,
       finished_at IS NOT NULL AS finished, scheduled_at IS NOT NULL AS scheduled,
       lock_blocked
FROM procq.jobs ORDER BY id;

-- not doing (one statement misses, the general path says why), no such job
SELECT procq.finish_job(1, 'succeeded');
SELECT procq.finish_job(4, 'failed');
SELECT procq.finish_job(99, 'cancelled');
SELECT id, status, error FROM procq.jobs WHERE id IN (1, 4) ORDER BY id;

-- the retried job runs again and fails for good
SELECT id, attempts FROM procq.fetch_job(worker => 'w');
SELECT procq.finish_job(7, 'failed', error => 'last');
SELECT id, status, error, attempts FROM procq.jobs WHERE id = 7;

-- a job scheduled for later is not fetched; once due, it is (made due by
-- moving its time back, as a DBA could)
SELECT procq.defer('later', scheduled_at => clock_timestamp() + interval '1 hour') AS later_id \gset
SELECT count(*) AS fetched_early FROM procq.fetch_job(worker => 'w');
UPDATE procq.jobs SET scheduled_at = clock_timestamp() - interval '1 second' WHERE id = :later_id;
SELECT id = :later_id AS fetched_due, status FROM procq.fetch_job(worker => 'w');
