-- workflow_dot.sql: procq.workflow_dot(workflow_id) (issue 9).
--  - A Graphviz digraph: one node "id: task" per job of the workflow,
--    filled by status (todo white, doing lightskyblue, succeeded
--    palegreen, failed salmon, cancelled lightgrey); one edge parent ->
--    child per dependency between its jobs; an edge into a child with
--    run_after 'completion' or 'failure' is labelled so and dashed.
--  - Deterministic: nodes and edges in id order.
--  - Quotes and backslashes in task names are escaped, line breaks become \n.
--  - P0002 for an unknown workflow; 42501 without access to its first job
--    (as for procq.workflows); NULL 22004.
-- The edges' conditions come from the stored run_after column only.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_dot_bob;
RESET client_min_messages;
\pset null '(null)'
\set VERBOSITY default
SET procq.retry_delay = 0;

-- ids 1..7 (alert gets 6: topological order): extract (succeeded), load "quoted" \ (failed), transform
-- (doing), report (cancelled: its parent failed), next (todo),
-- cleanup (completion) and alert (failure), both todo: no parent of
-- theirs is final without success, so that what they show does not
-- depend on how conditions are judged.
SELECT key, job_id FROM procq.defer_workflow($$[
    {"key": "extract", "task": "extract"},
    {"key": "load", "task": "load \"quoted\" \\ back", "depends_on": ["extract"]},
    {"key": "transform", "task": "transform", "depends_on": ["extract"]},
    {"key": "report", "task": "report", "depends_on": ["load"]},
    {"key": "next", "task": "next\nline", "depends_on": ["transform"]},
    {"key": "cleanup", "task": "cleanup", "run_after": "completion", "depends_on": ["transform", "next"]},
    {"key": "alert", "task": "alert", "run_after": "failure", "depends_on": ["extract", "transform"]}]$$);
-- a job of another workflow that depends on this one: not drawn
SELECT procq.defer('elsewhere', depends_on => '{1}', workflow_id => (SELECT procq.defer('other')));
SELECT procq.finish_job((SELECT id FROM procq.fetch_job(tasks => '{extract}')), 'succeeded');
SELECT procq.finish_job((SELECT id FROM procq.fetch_job(tasks => ARRAY['load "quoted" \ back'])),
                        'failed', error => 'boom');
SELECT id FROM procq.fetch_job(tasks => '{transform}');
SELECT id, status, run_after FROM procq.jobs WHERE workflow_id = 1 ORDER BY id;

SELECT procq.workflow_dot(1);
SELECT procq.workflow_dot(1) = procq.workflow_dot(1) AS same_each_time;
-- one job alone
SELECT procq.workflow_dot(8);

SELECT procq.workflow_dot(NULL);
SELECT procq.workflow_dot(999);
SELECT procq.workflow_dot(2);
CREATE ROLE regress_dot_bob;
GRANT USAGE ON SCHEMA procq TO regress_dot_bob;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_dot_bob;
SET ROLE regress_dot_bob;
SELECT procq.workflow_dot(1);
RESET ROLE;

DROP OWNED BY regress_dot_bob;
DROP ROLE regress_dot_bob;
