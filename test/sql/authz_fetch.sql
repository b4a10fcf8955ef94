-- authz_fetch.sql: fetch_job and fetch_jobs return only jobs the caller may
-- act on (superuser, or the privileges of the job's deferred_by), and ready
-- jobs of other roles cost them nothing: the ready indexes lead with
-- deferred_by, and a fetch reads only the parts of the roles it acts as
-- (index statistics of this backend, flushed on demand).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_fetch_alice, regress_fetch_bob, regress_fetch_worker;
RESET client_min_messages;
\pset null '(null)'

CREATE ROLE regress_fetch_alice;
CREATE ROLE regress_fetch_bob;
CREATE ROLE regress_fetch_worker;
GRANT regress_fetch_alice TO regress_fetch_worker;
GRANT USAGE ON SCHEMA procq TO regress_fetch_alice, regress_fetch_bob, regress_fetch_worker;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq
    TO regress_fetch_alice, regress_fetch_bob, regress_fetch_worker;

-- alice: 1 (priority 5, queue q1, task t1), 2 (q2, t2), 3 (scheduled, due)
SET ROLE regress_fetch_alice;
SELECT procq.defer('t1', queue => 'q1', priority => 5);
SELECT procq.defer('t2', queue => 'q2');
SELECT procq.defer('t1', queue => 'q1', scheduled_at => now() + interval '1 hour');
RESET ROLE;
UPDATE procq.jobs SET scheduled_at = now() - interval '1 minute' WHERE id = 3;
-- bob: 4 (priority -1)
SET ROLE regress_fetch_bob;
SELECT procq.defer('t1', queue => 'q1', priority => -1);
RESET ROLE;

-- bob never gets alice's jobs, whatever the filter: only his own
SET ROLE regress_fetch_bob;
BEGIN;
SELECT id FROM procq.fetch_job();
SELECT id FROM procq.fetch_job();
ROLLBACK;
BEGIN;
SELECT id FROM procq.fetch_jobs(10);
ROLLBACK;
SELECT id FROM procq.fetch_job(ARRAY['q1']) UNION ALL SELECT 0;
SELECT id FROM procq.fetch_jobs(10, ARRAY['q1', 'q2']);
SELECT id FROM procq.fetch_job(tasks => ARRAY['t1', 't2']);
SELECT id FROM procq.fetch_jobs(10, tasks => ARRAY['t1']);
RESET ROLE;
SELECT id, status, worker IS NOT NULL AS taken FROM procq.jobs ORDER BY id;
UPDATE procq.jobs SET status = 'todo', attempts = 0, worker = NULL, started_at = NULL,
    lease_expires_at = NULL WHERE id = 4;

-- the worker (member of alice) gets alice's jobs, best first (the due one
-- is taken directly), and not bob's
SET ROLE regress_fetch_worker;
BEGIN;
SELECT id, task FROM procq.fetch_job(ARRAY['q1', 'q2']);
SELECT id, task FROM procq.fetch_jobs(10, tasks => ARRAY['t1', 't2']);
SELECT count(*) AS more FROM procq.fetch_jobs(10);
ROLLBACK;
SELECT id, task FROM procq.fetch_jobs(10);
RESET ROLE;

-- bob's fetch beside 20,000 ready jobs of alice reads none of their index
-- entries: one descent per index part of his role (each variant of fetch)
SET ROLE regress_fetch_alice;
SELECT count(*) FROM procq.defer_jobs('t1', array_fill('{}'::jsonb, ARRAY[20000]), queue => 'q1');
RESET ROLE;
SELECT procq.cancel_job(4);
SET ROLE regress_fetch_bob;
SELECT procq.defer('t1', queue => 'q1', priority => -100) AS needle \gset
RESET ROLE;
SELECT pg_stat_force_next_flush();
CREATE TEMP TABLE index_use AS
    SELECT indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes
     WHERE schemaname = 'procq';
SET ROLE regress_fetch_bob;
BEGIN;
SELECT id = :needle AS needle FROM procq.fetch_job();
ROLLBACK;
BEGIN;
SELECT id = :needle AS needle FROM procq.fetch_job(ARRAY['q1']);
ROLLBACK;
BEGIN;
SELECT id = :needle AS needle FROM procq.fetch_jobs(100, tasks => ARRAY['t1']);
ROLLBACK;
BEGIN;
SELECT id = :needle AS needle FROM procq.fetch_jobs(100, ARRAY['q1', 'q2']);
ROLLBACK;
RESET ROLE;
SELECT pg_stat_force_next_flush();
-- (a few entries: bob's, and dead ones of his jobs taken above; not 20,000)
SELECT s.indexrelname, s.idx_scan - u.idx_scan AS scans,
       s.idx_tup_read - u.idx_tup_read < 10 AS entries_read_below_10
  FROM pg_stat_user_indexes s JOIN index_use u USING (indexrelname)
 WHERE s.schemaname = 'procq' AND s.indexrelname LIKE 'jobs_ready%'
 ORDER BY 1;

-- membership changes count at once in a session that fetched before (the
-- roles a fetch probes are kept per backend until pg_auth_members changes)
SET ROLE regress_fetch_alice;
SELECT procq.defer('t9', queue => 'q9') AS mine \gset
RESET ROLE;
SET ROLE regress_fetch_bob;
SELECT count(*) AS before_grant FROM procq.fetch_job(ARRAY['q9']);
RESET ROLE;
GRANT regress_fetch_alice TO regress_fetch_bob;
SET ROLE regress_fetch_bob;
BEGIN;
SELECT id = :mine AS after_grant FROM procq.fetch_job(ARRAY['q9']);
ROLLBACK;
RESET ROLE;
REVOKE regress_fetch_alice FROM regress_fetch_bob;
SET ROLE regress_fetch_bob;
SELECT count(*) AS after_revoke FROM procq.fetch_job(ARRAY['q9']);
RESET ROLE;

DROP OWNED BY regress_fetch_alice, regress_fetch_bob, regress_fetch_worker;
DROP ROLE regress_fetch_alice, regress_fetch_bob, regress_fetch_worker;
