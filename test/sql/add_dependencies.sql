-- add_dependencies.sql (issue 9, fan-out decided at run time):
-- procq.add_dependencies(job_id, depends_on) gives a todo job more parents,
-- newer ones too, judged by the parents' state as defer judges them:
--   succeeded -> nothing; todo / doing -> pending_parents + 1;
--   failed / cancelled -> failed_parents + 1 and, for a 'success' child,
--   pending_parents + 1 and the child cancelled (blamed on the lowest one),
--   its descendants following;
-- parents it already has count 0; a child that is not todo is 55000; a
-- missing child P0002, a missing parent 23503, NULL 22004, another role's
-- child or parent 42501; an edge that would close a cycle 22023, naming
-- the cycle.  Every error changes nothing.  Parents alone in a workflow of
-- their own join the child's.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_adddep_alice, regress_adddep_bob;
RESET client_min_messages;
\pset null '(null)'
\set VERBOSITY default
SET procq.retry_delay = 0;

-- The jobs given new parents here, whose counters the invariant query
-- recomputes from their parents.
CREATE TEMP TABLE touched (id bigint PRIMARY KEY);

-- pending_parents and failed_parents recomputed from the parents (by the
-- invariant of issue 9), for the touched jobs: no row when they agree.
CREATE TEMP VIEW broken_counters AS
    SELECT j.id, j.pending_parents, c.pending, j.failed_parents, c.failed
    FROM procq.jobs j
    JOIN touched t ON t.id = j.id
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE CASE WHEN j.run_after = 'success'
                                           THEN p.status <> 'succeeded'
                                           ELSE p.status IN ('todo', 'doing') END)::int AS pending,
               count(*) FILTER (WHERE p.status IN ('failed', 'cancelled'))::int AS failed
        FROM procq.job_dependencies d JOIN procq.jobs p ON p.id = d.depends_on
        WHERE d.job_id = j.id) c
    WHERE (j.pending_parents, j.failed_parents) IS DISTINCT FROM (c.pending, c.failed);

-- Everything an error must leave as it was, as one digest.
CREATE FUNCTION pg_temp.digest() RETURNS text LANGUAGE sql AS $$
    SELECT md5(coalesce((SELECT string_agg(j::text, ',' ORDER BY id) FROM procq.jobs j), '')
               || coalesce((SELECT string_agg(d::text, ',' ORDER BY job_id, depends_on)
                            FROM procq.job_dependencies d), ''))
$$;

CREATE FUNCTION pg_temp.jobs(ids bigint[])
RETURNS TABLE (id bigint, task text, status procq.job_status, run_after text,
               pending_parents int, failed_parents int, ready boolean,
               cancelled_by bigint, error text, parents bigint[])
LANGUAGE sql AS $$
    SELECT j.id, j.task, j.status, j.run_after, j.pending_parents, j.failed_parents,
           j.status = 'todo' AND j.pending_parents = 0 AND NOT j.lock_blocked AND NOT j.delayed,
           j.cancelled_by, j.error,
           ARRAY(SELECT d.depends_on FROM procq.job_dependencies d
                 WHERE d.job_id = j.id ORDER BY d.depends_on)
    FROM procq.jobs j WHERE j.id = ANY (ids) ORDER BY j.id
$$;

-- Parents in every status: 1 todo, 2 doing, 3 succeeded, 4 failed,
-- 5 cancelled.
SELECT procq.defer('p_todo') AS id;
SELECT procq.defer('p_doing') AS id;
SELECT procq.defer('p_ok') AS id;
SELECT procq.defer('p_bad') AS id;
SELECT procq.defer('p_cancel') AS id;
SELECT id FROM procq.fetch_job(tasks => '{p_ok}');
SELECT procq.finish_job(3, 'succeeded', '"ok"');
SELECT id FROM procq.fetch_job(tasks => '{p_bad}');
SELECT procq.finish_job(4, 'failed', error => 'boom');
SELECT procq.cancel_job(5);
SELECT id FROM procq.fetch_job(tasks => '{p_doing}');
-- Children: 6 waiting for 1, 7 ready.
SELECT procq.defer('c_wait', depends_on => '{1}') AS id;
SELECT procq.defer('c_ready') AS id;
INSERT INTO touched VALUES (6), (7);

-- A waiting child: the parent it has counts 0, a doing one 1, a succeeded
-- one adds a row but nothing to wait for.
SELECT procq.add_dependencies(6, '{1, 2, 3}') AS added;
SELECT * FROM pg_temp.jobs('{6}');
-- Parents it already has, named again and twice: nothing to add.
SELECT procq.add_dependencies(6, '{3, 2, 2, 1, 3}') AS added;
SELECT procq.add_dependencies(6, '{}') AS added;
SELECT * FROM pg_temp.jobs('{6}');

-- A ready child: a succeeded parent keeps it ready; a parent newer than
-- itself (8, deferred now) holds it back until that one succeeds.
SELECT procq.add_dependencies(7, '{3}') AS added;
SELECT * FROM pg_temp.jobs('{7}');
SELECT procq.defer('p_newer') AS id;
SELECT procq.add_dependencies(7, '{8}') AS added;
SELECT * FROM pg_temp.jobs('{7}');
SELECT id FROM procq.fetch_job(tasks => '{c_ready}');
SELECT id FROM procq.fetch_job(tasks => '{p_newer}');
SELECT procq.finish_job(8, 'succeeded');
SELECT * FROM pg_temp.jobs('{7}');
SELECT * FROM broken_counters;

-- A child that is not todo gets 55000: doing (7, fetched now), succeeded,
-- failed, cancelled.  Nothing changes.
SELECT id FROM procq.fetch_job(tasks => '{c_ready}');
SELECT pg_temp.digest() AS before \gset
SELECT procq.add_dependencies(7, '{1}');
SELECT procq.add_dependencies(3, '{1}');
SELECT procq.add_dependencies(4, '{1}');
SELECT procq.add_dependencies(5, '{1}');
SELECT pg_temp.digest() = :'before' AS unchanged;

-- A 'success' child with a parent that failed or was cancelled is
-- cancelled, blamed on the lowest such parent, and its descendants follow:
-- 9 waits for 1, 10 for 9; 9 gets 4 (failed) and 5 (cancelled).
SELECT procq.defer('c_victim', depends_on => '{1}') AS id;
SELECT procq.defer('c_below', depends_on => '{9}') AS id;
INSERT INTO touched VALUES (9);
SELECT procq.add_dependencies(9, '{5, 4}') AS added;
SELECT * FROM pg_temp.jobs('{9}');
SELECT id, status, cancelled_by, error FROM pg_temp.jobs('{10}');
-- ... a child with a cancelled parent only: 'was cancelled'.
SELECT procq.defer('c_victim2') AS id;
INSERT INTO touched VALUES (11);
SELECT procq.add_dependencies(11, '{5}') AS added;
SELECT * FROM pg_temp.jobs('{11}');
SELECT * FROM broken_counters;

-- 'completion' and 'failure' children (judged when the edge is added; what
-- happens when their parents end later: add_dependencies_conditions.sql):
-- a failed parent counts in failed_parents only and cancels nothing; a
-- todo one counts in pending_parents.  12 'completion' (ready, no
-- parents), 13 'failure' waiting for 1.
SELECT procq.defer('c_cleanup', run_after => 'completion') AS id;
SELECT procq.defer('c_alert', depends_on => '{1}', run_after => 'failure') AS id;
INSERT INTO touched VALUES (12), (13);
SELECT procq.add_dependencies(12, '{4}') AS added;
SELECT * FROM pg_temp.jobs('{12}');
SELECT procq.add_dependencies(12, '{1, 2, 3, 5}') AS added;
SELECT procq.add_dependencies(13, '{3, 4, 5}') AS added;
SELECT * FROM pg_temp.jobs('{12, 13}');
SELECT * FROM broken_counters;

-- Cycles: 14 <- 15 <- 16 (15 depends on 14, 16 on 15), 17 beside.  An edge
-- that would close a cycle is 22023 and names it, each job depending on
-- the next; nothing changes, not even the other parents of the call.
SELECT procq.defer('chain_a') AS id;
SELECT procq.defer('chain_b', depends_on => '{14}') AS id;
SELECT procq.defer('chain_c', depends_on => '{15}') AS id;
SELECT procq.defer('beside') AS id;
INSERT INTO touched VALUES (14), (15), (16), (17);
SELECT pg_temp.digest() AS before \gset
SELECT procq.add_dependencies(14, '{14}');
SELECT procq.add_dependencies(14, '{15}');
SELECT procq.add_dependencies(14, '{17, 16}');
-- two parents that would each close one: the shorter cycle is named
SELECT procq.add_dependencies(14, '{16, 15}');
SELECT pg_temp.digest() = :'before' AS unchanged;
-- Edges added by add_dependencies count too: 14 gets newer parent 17;
-- then 17 cannot depend on 16 (16 -> 15 -> 14 -> 17).
SELECT procq.add_dependencies(14, '{17}') AS added;
SELECT pg_temp.digest() AS before \gset
SELECT procq.add_dependencies(17, '{16}');
SELECT pg_temp.digest() = :'before' AS unchanged;
-- A diamond is no cycle: 16 also depends on 14, and 17 on nothing new.
SELECT procq.add_dependencies(16, '{14, 17}') AS added;
SELECT * FROM pg_temp.jobs('{14, 15, 16, 17}');
SELECT * FROM broken_counters;

-- Bad input: 22004, P0002, 23503; nothing changes.
SELECT pg_temp.digest() AS before \gset
SELECT procq.add_dependencies(NULL, '{1}');
SELECT procq.add_dependencies(6, NULL);
SELECT procq.add_dependencies(6, ARRAY[8, NULL]::bigint[]);
SELECT procq.add_dependencies(999, '{1}');
SELECT procq.add_dependencies(999, '{}');
SELECT procq.add_dependencies(6, '{8, 999}');
SELECT pg_temp.digest() = :'before' AS unchanged;

-- Workflows: parents alone in a workflow of their own join the child's;
-- one that shares its workflow with another job stays.  (Jobs deferred
-- without depends_on start workflows of their own.)
SELECT procq.defer('w_child') AS id;
SELECT procq.defer('w_other') AS id;
SELECT procq.defer('w_alone') AS id;
SELECT procq.defer('w_grouped') AS id;
SELECT procq.add_dependencies(19, '{21}') AS added;
SELECT procq.add_dependencies(18, '{20, 21}') AS added;
SELECT id, task, workflow_id FROM procq.jobs WHERE id BETWEEN 18 AND 21 ORDER BY id;

-- Access (42501): bob may not give alice's job parents, nor make his job
-- depend on hers; nothing changes.
CREATE ROLE regress_adddep_alice;
CREATE ROLE regress_adddep_bob;
GRANT USAGE ON SCHEMA procq TO regress_adddep_alice, regress_adddep_bob;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_adddep_alice, regress_adddep_bob;
SET ROLE regress_adddep_alice;
SELECT procq.defer('alice_child') AS id;
SELECT procq.defer('alice_parent') AS id;
SET ROLE regress_adddep_bob;
SELECT procq.defer('bob_child') AS id;
SELECT procq.defer('bob_parent') AS id;
RESET ROLE;
SELECT pg_temp.digest() AS before \gset
SET ROLE regress_adddep_bob;
SELECT procq.add_dependencies(22, '{25}');
SELECT procq.add_dependencies(24, '{25, 23}');
RESET ROLE;
SELECT pg_temp.digest() = :'before' AS unchanged;
SET ROLE regress_adddep_bob;
SELECT procq.add_dependencies(24, '{25}') AS added;
SET ROLE regress_adddep_alice;
SELECT procq.add_dependencies(22, '{23}') AS added;
RESET ROLE;
SELECT * FROM pg_temp.jobs('{22, 24}');
INSERT INTO touched VALUES (22), (24);
SELECT * FROM broken_counters;

DROP OWNED BY regress_adddep_alice, regress_adddep_bob;
DROP ROLE regress_adddep_alice, regress_adddep_bob;
