-- job_history.sql: procq.job_history(job_id), a job's events oldest first.
--  - access as procq.get_job: the roles that may act on the job (its
--    deferred_by's members, superusers) read its history; another role
--    gets 42501 and no row; nobody without EXECUTE (PUBLIC has none);
--  - a job that does not exist (never did, or was purged with its events)
--    is P0002; a NULL job_id 22004;
--  - a job deferred while procq.record_events was off has no history:
--    an empty result, not an error;
--  - the rows are procq.job_events's, in id order (oldest first).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_hist_alice, regress_hist_bob, regress_hist_worker,
    regress_hist_nobody;
RESET client_min_messages;
\pset null '-'
\set VERBOSITY default
SET procq.retry_delay = 0;

CREATE ROLE regress_hist_alice;
CREATE ROLE regress_hist_bob;
CREATE ROLE regress_hist_worker;
CREATE ROLE regress_hist_nobody;
GRANT regress_hist_alice TO regress_hist_worker;
GRANT USAGE ON SCHEMA procq TO regress_hist_alice, regress_hist_bob, regress_hist_worker,
    regress_hist_nobody;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq
    TO regress_hist_alice, regress_hist_bob, regress_hist_worker;

-- alice's job, run twice by her worker; bob's job
SET ROLE regress_hist_alice;
SELECT procq.defer('a', max_attempts => 2) AS a \gset
RESET ROLE;
SET ROLE regress_hist_worker;
SELECT id FROM procq.fetch_job(worker => 'w1');
SELECT procq.finish_job(:a, 'failed', error => 'flaky', attempt => 1);
SELECT id FROM procq.fetch_job(worker => 'w2');
SELECT procq.finish_job(:a, 'succeeded', attempt => 2);
RESET ROLE;
SET ROLE regress_hist_bob;
SELECT procq.defer('b') AS b \gset
RESET ROLE;

-- alice, her worker and a superuser read it, in the same order: oldest first
SET ROLE regress_hist_alice;
SELECT event, status, attempt, worker, error, by_role FROM procq.job_history(:a);
RESET ROLE;
SET ROLE regress_hist_worker;
SELECT array_agg(event ORDER BY ord) AS events
  FROM procq.job_history(:a) WITH ORDINALITY AS h(id, job_id, at, event, status, attempt,
                                                  worker, error, by_role, ord);
RESET ROLE;
SELECT (SELECT array_agg(id) FROM procq.job_history(:a))
     = (SELECT array_agg(id ORDER BY id) FROM procq.job_events WHERE job_id = :a) AS oldest_first,
       (SELECT bool_and(at IS NOT NULL AND job_id = :a) FROM procq.job_history(:a)) AS rows_of_the_job;
-- the whole row type is procq.job_events's
SELECT pg_typeof(h) FROM procq.job_history(:a) h LIMIT 1;

-- bob may not read alice's job's history (nor alice bob's)
SET ROLE regress_hist_bob;
SELECT * FROM procq.job_history(:a);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_hist_alice;
SELECT * FROM procq.job_history(:b);
\echo :LAST_ERROR_SQLSTATE
-- nor the table itself
SELECT count(*) FROM procq.job_events;
RESET ROLE;
-- a role without EXECUTE: PUBLIC has none
SET ROLE regress_hist_nobody;
SELECT * FROM procq.job_history(:a);
RESET ROLE;

-- no such job: P0002 (also for a job that was purged, with its events)
SELECT * FROM procq.job_history(999999);
\echo :LAST_ERROR_SQLSTATE
SELECT procq.purge('0 seconds');
SELECT count(*) AS events_left FROM procq.job_events WHERE job_id = :a;
SELECT * FROM procq.job_history(:a);
\echo :LAST_ERROR_SQLSTATE
-- NULL: 22004
SELECT * FROM procq.job_history(NULL);
\echo :LAST_ERROR_SQLSTATE

-- a job deferred with record_events off has no history, and is no error
SET procq.record_events = off;
SELECT procq.defer('quiet') AS quiet \gset
RESET procq.record_events;
SELECT count(*) AS quiet_events FROM procq.job_history(:quiet);
-- its later events are recorded
SELECT procq.cancel_job(:quiet);
SELECT event, status, error FROM procq.job_history(:quiet);

DROP OWNED BY regress_hist_alice, regress_hist_bob, regress_hist_worker, regress_hist_nobody;
DROP ROLE regress_hist_alice, regress_hist_bob, regress_hist_worker, regress_hist_nobody;
