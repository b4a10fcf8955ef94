-- retry_delay.sql (issue 8, bounds): the backoff between attempts is
-- procq.retry_delay * 2^(attempts - 1), at most procq.retry_delay_max, for
-- any number of attempts.  procq.retry_delay = 0 means "retry at once",
-- always: the doubling used to overflow to infinity after 1,024 attempts,
-- and 0 x infinity made the delay the maximum (an hour by default).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

-- How far in the future a job's next attempt is, in whole seconds.
CREATE TEMP VIEW backoff AS
    SELECT id, status, attempts, delayed,
           round(extract(epoch FROM scheduled_at - statement_timestamp()))::int AS delay_s
    FROM procq.jobs;

------------------------------------------------------------------------
-- retry_delay = 0: 1,100 attempts in a row, each fetched at once.
SET procq.retry_delay = 0;
SELECT procq.defer('flaky', max_attempts => 5000) AS job \gset
DO $$
DECLARE
    fetched int := 0;
    j record;
BEGIN
    FOR i IN 1 .. 1100 LOOP
        SELECT * INTO j FROM procq.fetch_job();
        EXIT WHEN j.id IS NULL;
        fetched := fetched + 1;
        PERFORM procq.finish_job(j.id, 'failed', error => 'attempt ' || j.attempts);
    END LOOP;
    RAISE NOTICE 'fetched % times in a row', fetched;
END
$$;
SELECT status, attempts, delayed, delay_s <= 0 AS due FROM backoff WHERE id = :job;

-- ... also through finish_jobs, at attempt 3,001
UPDATE procq.jobs SET attempts = 3000 WHERE id = :job;
SELECT attempts FROM procq.fetch_job();
SELECT * FROM procq.finish_jobs(ARRAY[:job]::bigint[], 'failed');
SELECT status, attempts, delayed, delay_s <= 0 AS due FROM backoff WHERE id = :job;
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;

------------------------------------------------------------------------
-- A nonzero delay: doubling per attempt, capped, for any number of
-- attempts (no overflow), in finish_job and finish_jobs alike.
SET procq.retry_delay = '10s';
SET procq.retry_delay_max = '1000s';
SELECT procq.defer('flaky', max_attempts => 100000) FROM generate_series(1, 6);
UPDATE procq.jobs SET attempts = a.n
    FROM (VALUES (1, 0), (2, 2), (3, 6), (4, 1023), (5, 1500), (6, 99990)) AS a(id, n)
    WHERE jobs.id = a.id;
SELECT count(*) FROM procq.fetch_jobs(10);
SELECT procq.finish_job(1, 'failed'), procq.finish_job(2, 'failed'), procq.finish_job(3, 'failed');
SELECT * FROM procq.finish_jobs(ARRAY[4, 5, 6]::bigint[], 'failed');
-- attempt 1: 10 s; attempt 3: 40 s; attempt 7: 640 s; later ones: 1,000 s
SELECT * FROM backoff ORDER BY id;

-- retry_delay_max = 0 caps every delay at 0
SET procq.retry_delay_max = 0;
UPDATE procq.jobs SET scheduled_at = NULL, delayed = false;
SELECT count(*) FROM procq.fetch_jobs(10);
SELECT * FROM procq.finish_jobs(ARRAY[1, 2, 3, 4, 5, 6]::bigint[], 'failed');
SELECT id, delayed, delay_s <= 0 AS due FROM backoff ORDER BY id;
