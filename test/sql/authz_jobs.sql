-- authz_jobs.sql: a role may act on a job only when it has the privileges
-- of the job's deferred_by (pg_has_role(..., 'USAGE')), or is a superuser;
-- otherwise 42501, and nothing changes.  alice and bob have the same grants
-- (EXECUTE on everything): bob cannot touch alice's jobs; app_worker, a
-- member of alice, can.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_authz_alice, regress_authz_bob, regress_authz_worker;
RESET client_min_messages;
\pset null '(null)'
\set VERBOSITY default
SET procq.retry_delay = 0;

CREATE ROLE regress_authz_alice;
CREATE ROLE regress_authz_bob;
CREATE ROLE regress_authz_worker;
GRANT regress_authz_alice TO regress_authz_worker;
GRANT USAGE ON SCHEMA procq TO regress_authz_alice, regress_authz_bob, regress_authz_worker;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq
    TO regress_authz_alice, regress_authz_bob, regress_authz_worker;

-- alice's jobs: 1 (will run), 2 (child of 1), 3 (todo), 4 (will fail)
SET ROLE regress_authz_alice;
SELECT procq.defer('a1', '{"secret": "alice"}', priority => 5) AS j1;
SELECT procq.defer('a2', depends_on => ARRAY[1]) AS j2;
SELECT procq.defer('a3') AS j3;
SELECT procq.defer('a4', priority => 4) AS j4;
RESET ROLE;

-- (that bob's fetches never return alice's jobs: authz_fetch.sql)

-- app_worker (member of alice) fetches alice's best jobs
SET ROLE regress_authz_worker;
SELECT id, task, args FROM procq.fetch_job(worker => 'w');
SELECT id, task FROM procq.fetch_jobs(1, worker => 'w');
RESET ROLE;

-- bob may do nothing to them
SET ROLE regress_authz_bob;
SELECT procq.finish_job(1, 'succeeded', '{"forged": true}');
SELECT * FROM procq.finish_jobs(ARRAY[1, 4], 'succeeded');
SELECT procq.heartbeat(1);
SELECT procq.cancel_job(3);
SELECT procq.cancel_job(1, abort => true);
SELECT procq.parent_results(2);
SELECT procq.get_job(3);
SELECT procq.defer('b', depends_on => ARRAY[1]);
SELECT procq.defer_jobs('b', ARRAY['{}'::jsonb], depends_on => ARRAY[3]);
SELECT * FROM procq.defer_workflow('[{"key": "x", "task": "b", "depends_on": [3]}]');
RESET ROLE;
-- recover_stalled only recovers the jobs the caller may act on
UPDATE procq.jobs SET lease_expires_at = now() - interval '1 minute' WHERE id = 1;
SET ROLE regress_authz_bob;
SELECT procq.recover_stalled() AS bob_recovered;
RESET ROLE;
UPDATE procq.jobs SET lease_expires_at = now() + interval '1 hour' WHERE id = 1;
SELECT id, status, attempts, result FROM procq.jobs ORDER BY id;

-- the worker (a member of alice) may
SET ROLE regress_authz_worker;
SELECT procq.heartbeat(1) > now() AS extended;
SELECT procq.finish_job(1, 'succeeded', '{"rows": 1}');
SELECT * FROM procq.finish_jobs(ARRAY[4], 'failed', errors => ARRAY['boom']);
SELECT procq.retry_job(4);
SELECT procq.cancel_job(3);
SELECT procq.defer('w', depends_on => ARRAY[1]) AS j5;
RESET ROLE;

-- bob cannot retry alice's failed job either, nor read a parent's result
-- through a child of his own whose parent is alice's
SET ROLE regress_authz_alice;
SELECT id, task FROM procq.fetch_job(tasks => ARRAY['a2']);
SELECT procq.finish_job(2, 'failed');
RESET ROLE;
SET ROLE regress_authz_bob;
SELECT procq.retry_job(2);
RESET ROLE;
-- a child of bob's that depends on alice's job (made by a superuser)
SELECT procq.defer('b-child', depends_on => ARRAY[1]) AS j6;
UPDATE procq.jobs SET deferred_by = 'regress_authz_bob' WHERE id = 6;
SET ROLE regress_authz_bob;
SELECT procq.parent_results(6);
RESET ROLE;
SET ROLE regress_authz_worker;
SELECT procq.parent_results(5);
SELECT (procq.get_job(5)).status;
RESET ROLE;

SELECT id, task, status, attempts, deferred_by, result, error FROM procq.jobs ORDER BY id;

-- bad input to the reading functions: clear errors
SELECT procq.get_job(NULL);
SELECT procq.get_job(999);
SELECT count(*) FROM procq.get_jobs(NULL);
SELECT count(*) FROM procq.get_jobs(ARRAY[NULL, 1]::bigint[]);
SELECT count(*) FROM procq.get_jobs('{}');
SELECT procq.wait_job(NULL);
SELECT procq.wait_job(999, interval '1 second');
SELECT procq.wait_job(1, interval '-1 second');
SELECT procq.wait_job(1, interval '1 month');
SELECT (procq.wait_job(4, interval '0')).status AS still_todo;
SELECT (procq.wait_job(1, interval '2 days')).status AS ended;

DROP OWNED BY regress_authz_alice, regress_authz_bob, regress_authz_worker;
DROP ROLE regress_authz_alice, regress_authz_bob, regress_authz_worker;
