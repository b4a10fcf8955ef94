-- workflow_ids.sql: which workflow a new job joins (issue 9).
--  - defer without depends_on and workflow_id: its own id.
--  - defer with depends_on: the parents' workflow when they all share one,
--    else its own id.
--  - workflow_id => W: W must be the first job of a workflow (id =
--    workflow_id) and the caller must be allowed to act on it, else P0002
--    'workflow W does not exist' / 42501, and nothing is inserted; W wins
--    over the parents'.
--  - defer_jobs: the same rules for each job (without parents each is its
--    own workflow).
--  - defer_workflow: all steps in one new workflow, named by the id of its
--    first job (existing parents do not change that), or workflow_id => W.
--  - The API draws the id in its statement: with the BEFORE INSERT trigger
--    jobs_workflow_default disabled, every path still gives the same ids
--    (the trigger is only for INSERTs that name no workflow).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_wfid_alice, regress_wfid_bob;
RESET client_min_messages;
\pset null '(null)'
\set VERBOSITY default

CREATE FUNCTION pg_temp.jobs() RETURNS TABLE (id bigint, task text, workflow_id bigint, step_key text)
LANGUAGE sql AS $$ SELECT id, task, workflow_id, step_key FROM procq.jobs ORDER BY id $$;

-- 1 starts a workflow, 2 and 5 join it, 3 starts another; 4 has parents
-- in two workflows: its own id; so has 6 (parents in 1's and 4's),
-- while 7 joins 4's.
SELECT procq.defer('a') AS j1;
SELECT procq.defer('b', depends_on => '{1}') AS j2;
SELECT procq.defer('c') AS j3;
SELECT procq.defer('d', depends_on => '{1,3}') AS j4;
SELECT procq.defer('e', depends_on => '{1,2}') AS j5;
SELECT procq.defer('f', depends_on => '{2,4}') AS j6;
SELECT procq.defer('g', depends_on => '{4}') AS j7;
-- explicit workflow_id wins over the parents'
SELECT procq.defer('h', depends_on => '{3}', workflow_id => 1) AS j8;
SELECT procq.defer('i', workflow_id => 3) AS j9;
SELECT * FROM pg_temp.jobs();

-- errors: not a workflow's first job, no such job, not an id; nothing inserted
SELECT max(id) AS before FROM procq.jobs \gset
SELECT procq.defer('x', workflow_id => 2);
SELECT procq.defer('x', workflow_id => 1000);
SELECT procq.defer('x', workflow_id => 0);
SELECT procq.defer('x', workflow_id => -1);
SELECT * FROM procq.defer_jobs('x', '{"{}"}', workflow_id => 2);
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "x"}]', workflow_id => 5);
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "x"}]', workflow_id => -1);
SELECT count(*) AS inserted FROM procq.jobs WHERE id > :before;

-- defer_jobs: own ids without parents, the parents' workflow with them,
-- the named one with workflow_id
SELECT * FROM procq.defer_jobs('dj', '{"{}", "{}"}');
SELECT * FROM procq.defer_jobs('dj-child', '{"{}", "{}"}', depends_on => '{1,2}');
SELECT * FROM procq.defer_jobs('dj-mixed', '{"{}"}', depends_on => '{1,3}');
SELECT * FROM procq.defer_jobs('dj-named', '{"{}", "{}"}', depends_on => '{1}', workflow_id => 3);
SELECT * FROM pg_temp.jobs() WHERE task LIKE 'dj%';

-- defer_workflow: one workflow, the first job's id, whatever the existing
-- parents; or an existing one
SELECT * FROM procq.defer_workflow('[
    {"key": "load", "task": "wf", "depends_on": ["extract"]},
    {"key": "extract", "task": "wf", "depends_on": [1]},
    {"key": "other", "task": "wf", "depends_on": [3]}]');
SELECT * FROM procq.defer_workflow('[{"key": "more", "task": "wf2", "depends_on": [3]}]',
                                   workflow_id => 1);
SELECT * FROM pg_temp.jobs() WHERE task LIKE 'wf%';

-- No trigger needed: the same rules with jobs_workflow_default disabled
ALTER TABLE procq.jobs DISABLE TRIGGER jobs_workflow_default;
SELECT procq.defer('nt') AS nt1 \gset
SELECT procq.defer('nt', depends_on => ARRAY[:nt1]) AS nt2;
SELECT procq.defer('nt', queueing_lock => 'q') AS nt3;
SELECT * FROM procq.defer_jobs('nt', '{"{}"}');
SELECT count(*) FROM procq.defer_workflow('[{"key": "a", "task": "nt"}, {"key": "b", "task": "nt", "depends_on": ["a"]}]');
ALTER TABLE procq.jobs ENABLE TRIGGER jobs_workflow_default;
SELECT id - :nt1 AS id, workflow_id - :nt1 AS workflow_id FROM procq.jobs WHERE task = 'nt' ORDER BY id;

-- access: bob may not put jobs into alice's workflow (42501, nothing
-- inserted); alice may
CREATE ROLE regress_wfid_alice;
CREATE ROLE regress_wfid_bob;
GRANT USAGE ON SCHEMA procq TO regress_wfid_alice, regress_wfid_bob;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_wfid_alice, regress_wfid_bob;
SET ROLE regress_wfid_alice;
SELECT procq.defer('alice') AS alice_wf \gset
RESET ROLE;
SELECT max(id) AS before FROM procq.jobs \gset
SET ROLE regress_wfid_bob;
SELECT procq.defer('bob', workflow_id => :alice_wf);
SELECT * FROM procq.defer_jobs('bob', '{"{}"}', workflow_id => :alice_wf);
SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "bob"}]', workflow_id => :alice_wf);
RESET ROLE;
SELECT count(*) AS inserted FROM procq.jobs WHERE id > :before;
SET ROLE regress_wfid_alice;
SELECT procq.defer('alice 2', workflow_id => :alice_wf) - :alice_wf AS offset;
RESET ROLE;
SELECT count(*) AS alice_jobs_in_her_workflow FROM procq.jobs WHERE workflow_id = :alice_wf;

DROP OWNED BY regress_wfid_alice, regress_wfid_bob;
DROP ROLE regress_wfid_alice, regress_wfid_bob;
