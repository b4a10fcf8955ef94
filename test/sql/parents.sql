-- parents.sql: procq.parents(job_id) and procq.parent_results(job_id,
-- by_key) (issue 9).
--  - parents: one row per parent, in id order: job_id, task, status,
--    result, error, step_key; none for a job without parents.
--  - parent_results: keyed by parent id; by_key => true: by the parents'
--    step_key, a parent without one by its id; of parents with the same
--    key, the one with the highest id.
--  - Access as parent_results: the job and every parent (42501); P0002 for
--    an unknown job; NULL arguments 22004.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_par_alice, regress_par_bob;
RESET client_min_messages;
\pset null '(null)'
\set VERBOSITY default
SET procq.retry_delay = 0;

-- 1 (no key, succeeds), then a workflow: a (succeeds), b (fails),
-- c (todo), and the fan-in 'join' on all four; 'twin' has a parent with
-- the key "a" from another workflow
SELECT procq.defer('plain') AS plain;
SELECT key, job_id FROM procq.defer_workflow('[
    {"key": "a", "task": "step-a"},
    {"key": "b", "task": "step-b"},
    {"key": "c", "task": "step-c"},
    {"key": "join", "task": "join", "run_after": "completion", "depends_on": ["a", "b", "c", 1]}]');
SELECT key, job_id FROM procq.defer_workflow('[{"key": "a", "task": "other-a"}]');
SELECT procq.finish_job((SELECT id FROM procq.fetch_job(tasks => '{plain}')), 'succeeded', '{"n": 1}');
SELECT procq.finish_job((SELECT id FROM procq.fetch_job(tasks => '{step-a}')), 'succeeded', '{"n": 2}');
SELECT procq.finish_job((SELECT id FROM procq.fetch_job(tasks => '{step-b}')), 'failed', error => 'boom');
SELECT procq.finish_job((SELECT id FROM procq.fetch_job(tasks => '{other-a}')), 'succeeded', '"other"');
SELECT procq.defer('twin', depends_on => '{2,6}') AS twin;

SELECT * FROM procq.parents(5);
SELECT * FROM procq.parents(job_id => 7);
SELECT count(*) AS none FROM procq.parents(1);
SELECT procq.parent_results(5);
SELECT procq.parent_results(5, by_key => false);
SELECT procq.parent_results(5, by_key => true);
SELECT procq.parent_results(7, true);
SELECT procq.parent_results(1, true);

SELECT * FROM procq.parents(NULL);
SELECT * FROM procq.parents(999);
SELECT procq.parent_results(5, NULL);
SELECT procq.parent_results(999, true);

-- access: bob may read neither alice's job's parents nor a job of his
-- whose parent is alice's
CREATE ROLE regress_par_alice;
CREATE ROLE regress_par_bob;
GRANT USAGE ON SCHEMA procq TO regress_par_alice, regress_par_bob;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_par_alice, regress_par_bob;
GRANT regress_par_bob TO regress_par_alice;
SET ROLE regress_par_bob;
SELECT procq.defer('bob-parent') AS bob_parent \gset
SET ROLE regress_par_alice;
SELECT procq.defer('alice-parent') AS alice_parent \gset
SELECT procq.defer('alice-child', depends_on => ARRAY[:bob_parent, :alice_parent]) AS alice_child \gset
SELECT job_id - :bob_parent AS parent, task FROM procq.parents(:alice_child);
SET ROLE regress_par_bob;
SELECT procq.defer('bob-child', depends_on => ARRAY[:bob_parent]) AS bob_child \gset
SELECT * FROM procq.parents(:alice_child);
SELECT procq.parent_results(:alice_child, true);
SELECT job_id - :bob_parent AS parent, task FROM procq.parents(:bob_child);
RESET ROLE;
-- a parent of bob's job that bob may not act on (a dependency row a DBA
-- added): 42501 naming it
INSERT INTO procq.job_dependencies (job_id, depends_on) VALUES (:bob_child, :alice_parent);
SET ROLE regress_par_bob;
SELECT * FROM procq.parents(:bob_child);
SELECT procq.parent_results(:bob_child, true);
RESET ROLE;

DROP OWNED BY regress_par_alice, regress_par_bob;
DROP ROLE regress_par_alice, regress_par_bob;
