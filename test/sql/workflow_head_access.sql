-- workflow_head_access.sql: who may see and act on a workflow once
-- add_dependencies has joined jobs into it (issue 9, review fix).
--  - procq.workflows, workflow_dot and cancel_workflow decide access (and
--    the view's task) by the workflow's first job, id = workflow_id, not by
--    its lowest id (that only once the first job was purged).
--  - add_dependencies moves a parent that is alone in its workflow into
--    the child's only when its id is greater than the child's workflow_id,
--    so the first job stays the lowest id; an older lone parent keeps its
--    own workflow.
-- Repro: bob defers B; alice defers a workflow H -> C (H > B); carol, a
-- member of both, adds B as a parent of C.  Bob must not see alice's
-- workflow, alice keeps it.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_wha_alice, regress_wha_bob, regress_wha_carol;
RESET client_min_messages;
\pset null '(null)'
\set VERBOSITY terse

CREATE ROLE regress_wha_alice;
CREATE ROLE regress_wha_bob;
CREATE ROLE regress_wha_carol;
GRANT regress_wha_alice, regress_wha_bob TO regress_wha_carol;
GRANT USAGE ON SCHEMA procq TO regress_wha_alice, regress_wha_bob, regress_wha_carol;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_wha_alice, regress_wha_bob, regress_wha_carol;
GRANT SELECT ON procq.workflows TO regress_wha_alice, regress_wha_bob, regress_wha_carol;

SET ROLE regress_wha_bob;
SELECT procq.defer('bob-b') AS b \gset
SET ROLE regress_wha_alice;
SELECT job_id AS h FROM procq.defer_workflow('[
    {"key": "h", "task": "alice-h"}, {"key": "c", "task": "alice-c", "depends_on": ["h"]}]')
    WHERE key = 'h' \gset
SELECT :h + 1 AS c \gset
SET ROLE regress_wha_carol;
SELECT procq.add_dependencies(:c, ARRAY[:b]::bigint[]);
RESET ROLE;
-- B older than the workflow: it stays in its own
SELECT id - :b AS job, task, workflow_id - :b AS workflow FROM procq.jobs ORDER BY id;

SET ROLE regress_wha_bob;
SELECT workflow_id - :b AS workflow, task, jobs FROM procq.workflows ORDER BY workflow_id;
SELECT procq.workflow_dot(:h) IS NOT NULL AS bob_draws_alices;
SET ROLE regress_wha_alice;
SELECT workflow_id - :b AS workflow, task, jobs FROM procq.workflows ORDER BY workflow_id;
SELECT procq.workflow_dot(:h) LIKE '%alice-c%' AS alice_draws_hers;
RESET ROLE;

-- Data that puts an older job into a workflow anyway (a DBA update, or
-- an install before this fix): the first job still decides.
UPDATE procq.jobs SET workflow_id = :h WHERE id = :b;
SET ROLE regress_wha_bob;
SELECT count(*) AS bob_sees_alices FROM procq.workflows WHERE workflow_id = :h;
SELECT procq.workflow_dot(:h) IS NOT NULL AS bob_draws_alices;
SELECT procq.cancel_workflow(:h);
SET ROLE regress_wha_alice;
SELECT workflow_id - :b AS workflow, task, jobs FROM procq.workflows ORDER BY workflow_id;
SELECT procq.workflow_dot(:h) LIKE '%alice-c%' AS alice_draws_hers;
RESET ROLE;
-- once the first job is purged, the earliest remaining job decides
DELETE FROM procq.job_dependencies WHERE depends_on = :h;
DELETE FROM procq.jobs WHERE id = :h;
SET ROLE regress_wha_bob;
SELECT workflow_id - :b AS workflow, task, jobs FROM procq.workflows ORDER BY workflow_id;
RESET ROLE;

DROP OWNED BY regress_wha_alice, regress_wha_bob, regress_wha_carol;
DROP ROLE regress_wha_alice, regress_wha_bob, regress_wha_carol;
