-- metrics.sql: procq.metrics() (issue 10): the rows for a Prometheus
-- exporter, with their exact names.
--  - per queue: jobs_ready, jobs_waiting (= waiting_parents + waiting_lock
--    + scheduled), jobs_waiting_parents, jobs_waiting_lock, jobs_scheduled,
--    jobs_running, jobs_succeeded, jobs_failed, jobs_cancelled,
--    jobs_finished_last_minute, oldest_ready_age_seconds (0 without a ready
--    job), and the counters jobs_succeeded_total, jobs_failed_total,
--    jobs_cancelled_total, which a purge or a retry never lowers;
--  - with queue NULL: workers_starting, workers_idle, workers_running_sql,
--    workers_running_shell, workers_jobs_done_total,
--    workers_longest_job_seconds (no background workers here: all 0);
--  - EXECUTE on it is all a monitoring role needs; the queries of
--    docs/postgres_exporter.yaml (test/ext/metrics_config.sh runs the file's).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
DROP ROLE IF EXISTS regress_metrics_monitor;
CREATE EXTENSION procq;
RESET client_min_messages;
SET procq.retry_delay = 0;

SELECT * FROM procq.metrics();                                   -- the workers only

SELECT procq.defer('p', queue => 'm1') AS p;                     -- 1
SELECT procq.defer('c', queue => 'm1', depends_on => ARRAY[1]);  -- 2
SELECT procq.defer('l', queue => 'm2', lock => 'L');             -- 3
SELECT procq.defer('l', queue => 'm2', lock => 'L');             -- 4
SELECT procq.defer('s', queue => 'm2', scheduled_at => now() + interval '1 day');  -- 5
SELECT procq.defer('f', queue => 'm2');                          -- 6
SELECT id FROM procq.fetch_job(ARRAY['m2'], tasks => '{l}');
SELECT id FROM procq.fetch_job(ARRAY['m2'], tasks => '{f}');
SELECT procq.finish_job(6, 'failed');
SELECT procq.cancel_job(5);
SELECT metric, queue, CASE WHEN metric = 'oldest_ready_age_seconds' THEN (value > 0)::int ELSE value END AS value
FROM procq.metrics();

-- the counters never go down: a retry and a purge
SELECT procq.retry_job(6);
UPDATE procq.jobs SET finished_at = now() - interval '2 days' WHERE id = 5;
SELECT procq.purge('1 day');
SELECT metric, queue, value FROM procq.metrics()
WHERE metric IN ('jobs_failed', 'jobs_failed_total', 'jobs_cancelled', 'jobs_cancelled_total')
ORDER BY queue, metric;

-- a monitoring role with EXECUTE only; the queries of docs/postgres_exporter.yaml
CREATE ROLE regress_metrics_monitor;
GRANT USAGE ON SCHEMA procq TO regress_metrics_monitor;
SET ROLE regress_metrics_monitor;
SELECT count(*) FROM procq.metrics();                            -- 42501
RESET ROLE;
GRANT EXECUTE ON FUNCTION procq.metrics() TO regress_metrics_monitor;
SET ROLE regress_metrics_monitor;
SELECT metric, queue, value FROM procq.metrics() WHERE queue IS NOT NULL AND metric = 'jobs_ready';
SELECT metric, value FROM procq.metrics() WHERE queue IS NULL;
RESET ROLE;

DROP EXTENSION procq CASCADE;
DROP OWNED BY regress_metrics_monitor;
DROP ROLE regress_metrics_monitor;
