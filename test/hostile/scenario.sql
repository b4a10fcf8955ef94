-- test/hostile/scenario.sql: every API function, the triggers (plain UPDATE
-- and DELETE by a role with table privileges, a superuser's DBA updates)
-- and procq.purge, run by test/sql/hostile_search_path.sql twice: once
-- plainly, once with look-alikes everywhere and a hostile search_path.
-- Written without operators, casts or functions of its own (literals are
-- typed by the parameters they go to; comparisons use OPERATOR(pg_catalog.=)),
-- so that whatever a look-alike records came from procq.
SET ROLE regress_procq_mallory;
SELECT procq.defer('extract', args => '{"file": "a.csv"}', max_attempts => 2, lock => 'L') AS j1;
SELECT procq.defer('load', depends_on => '{1}', lock => 'L') AS j2;
SELECT procq.defer('report', depends_on => '{1,2}', queueing_lock => 'Q') AS j3;
SELECT procq.defer('later', scheduled_at => '2999-01-01 00:00:00+00') AS j4;
SELECT procq.defer('past', scheduled_at => '2000-01-01 00:00:00+00', queue => 'other', priority => 5) AS j5;
SELECT key, job_id FROM procq.defer_workflow('[{"key": "a", "task": "wf"},
    {"key": "b", "task": "wf", "depends_on": ["a", 1], "lock": "L", "queueing_lock": "R"}]');
SELECT procq.defer_jobs('fan', '{"{\"n\": 1}", "{\"n\": 2}"}', depends_on => '{6}', lock => 'F');

-- a worker's rounds
SELECT id, task, attempts, worker FROM procq.fetch_job(worker => 'w1');
SELECT procq.finish_job(5, 'succeeded', '{"ok": 1}');
SELECT id, task, attempts FROM procq.fetch_job(queues => '{default}', worker => 'w1');
SELECT procq.heartbeat(1) IS NOT NULL AS extended;
SELECT procq.finish_job(1, 'failed', error => 'transient');
SELECT id, attempts FROM procq.fetch_job(tasks => '{extract}', worker => 'w2');
SELECT procq.finish_job(1, 'succeeded', '{"rows": 3}');
SELECT id, task FROM procq.fetch_jobs(5, worker => 'w3');
SELECT job_id, status FROM procq.finish_jobs('{2,6}', 'succeeded', '{"{\"l\": 1}", "{\"w\": 1}"}');
SELECT procq.parent_results(3);
SELECT id, task FROM procq.fetch_jobs(10, queues => '{default,other}', worker => 'w4', tasks => '{fan,report}');
SELECT procq.finish_job(8, 'failed', error => 'bad');
SELECT procq.finish_job(3, 'succeeded');
SELECT procq.retry_job(8);
SELECT procq.cancel_job(8);
SELECT procq.cancel_job(4);
SELECT id, task FROM procq.fetch_job(worker => 'w5');
-- a lease that ran out (a plain UPDATE), recovered
UPDATE procq.jobs SET lease_expires_at = '2000-01-01 00:00:00+00' WHERE id OPERATOR(pg_catalog.=) 7;
SELECT procq.recover_stalled();
SELECT procq.retry_job(7, scheduled_at => '2000-01-01 00:00:00+00');

-- plain UPDATE and DELETE by a role with privileges on the tables
SELECT procq.defer('dba', lock => 'M') AS j10;
SELECT procq.defer('dba', depends_on => '{10}', lock => 'M') AS j11;
SELECT procq.defer('dba', depends_on => '{11}') AS j12;
SELECT procq.defer('dba', depends_on => '{10}') AS j13;
SELECT procq.defer('dba') AS j14;
SELECT procq.defer('dba', depends_on => '{14}') AS j15;
SELECT procq.defer('dba') AS j16;
SELECT procq.defer('dba', depends_on => '{16}') AS j17;
UPDATE procq.jobs SET status = 'succeeded' WHERE id OPERATOR(pg_catalog.=) 10;
UPDATE procq.jobs SET status = 'cancelled' WHERE id OPERATOR(pg_catalog.=) 11;
DELETE FROM procq.jobs WHERE id OPERATOR(pg_catalog.=) 14;
DELETE FROM procq.job_dependencies WHERE job_id OPERATOR(pg_catalog.=) 17;
UPDATE procq.jobs SET status = 'todo' WHERE id OPERATOR(pg_catalog.=) 11;
UPDATE procq.jobs SET priority = 7 WHERE id OPERATOR(pg_catalog.=) 13;
SELECT procq.purge('0 seconds');
RESET ROLE;

-- a superuser's DBA updates, and the handlers
UPDATE procq.jobs SET status = 'failed', error = 'by hand' WHERE id OPERATOR(pg_catalog.=) 16;
UPDATE procq.jobs SET status = 'todo' WHERE id OPERATOR(pg_catalog.=) 16;
UPDATE procq.jobs SET status = 'cancelled' WHERE id OPERATOR(pg_catalog.=) 13;
SELECT procq.register_handler('wf', 'sql', 'SELECT $2', timeout => '1 minute');
SELECT procq.register_handler('fan', 'sql', 'SELECT 1');
SELECT procq.unregister_handler('fan');
SELECT pid, worker FROM procq.worker_status;
SELECT procq.purge('0 seconds');
