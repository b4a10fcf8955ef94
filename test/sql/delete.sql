-- delete.sql (rule 3): deleting jobs and dependency rows.
--  - Deleting a job removes its dependency rows, as parent and as child.
--  - Deleting a succeeded parent changes nothing for its children.
--  - Deleting a parent that had not succeeded cancels its todo descendants;
--    it never releases a child, even when it was the last pending parent.
--  - One DELETE of several related jobs works.
--  - Deleting a dependency row directly: the child waits for one parent
--    less, and is released when that was the last pending one.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

CREATE TEMP VIEW state AS
    SELECT id, task, status, pending_parents, cancelled_by, error
      FROM procq.jobs ORDER BY id;
CREATE TEMP VIEW deps AS
    SELECT job_id, depends_on FROM procq.job_dependencies ORDER BY 1, 2;

------------------------------------------------------------------------
-- Dependency rows go with the job, on both sides: 1 -> 2 -> 3.
SELECT procq.defer('a') AS id;
SELECT procq.defer('b', depends_on => '{1}') AS id;
SELECT procq.defer('c', depends_on => '{2}') AS id;
TABLE deps;
DELETE FROM procq.jobs WHERE id = 2;
TABLE deps;
-- 1 is untouched; 3 lost its only parent before it succeeded
TABLE state;

------------------------------------------------------------------------
-- Deleting a succeeded parent changes nothing for its children.
--   1 p1 and 2 p2 -> 3 waits-on-both;  4 p4 -> 5 released
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p1') AS id;
SELECT procq.defer('p2', queue => 'slow') AS id;
SELECT procq.defer('waits-on-both', queue => 'children', depends_on => '{1,2}') AS id;
SELECT procq.defer('p4') AS id;
SELECT procq.defer('released', queue => 'children', depends_on => '{4}') AS id;
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(1, 'succeeded');
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(4, 'succeeded');
TABLE state;
DELETE FROM procq.jobs WHERE id = 1;
DELETE FROM procq.jobs WHERE id = 4;
-- 3 still waits for p2 only, 5 stays released
TABLE state;
TABLE deps;
SELECT id, task FROM procq.fetch_job(ARRAY['children']);
SELECT id, task FROM procq.fetch_job(ARRAY['children']);
-- and 3 is released when p2 succeeds
SELECT id FROM procq.fetch_job(ARRAY['slow']);
SELECT procq.finish_job(2, 'succeeded');
SELECT id, task, status, pending_parents FROM procq.jobs WHERE id = 3;
SELECT id, task FROM procq.fetch_job(ARRAY['children']);

------------------------------------------------------------------------
-- Deleting a parent that has not succeeded cancels; it never releases.
--   1 p1 (succeeded) and 2 p2 (todo) -> 3 child -> 4 grandchild
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p1') AS id;
SELECT procq.defer('p2', queue => 'slow') AS id;
SELECT procq.defer('child', queue => 'children', depends_on => '{1,2}') AS id;
SELECT procq.defer('grandchild', queue => 'children', depends_on => '{3}') AS id;
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(1, 'succeeded');
-- p2 is the last pending parent of 3
TABLE state;
DELETE FROM procq.jobs WHERE id = 2;
TABLE state;
SELECT id FROM procq.fetch_job(ARRAY['children']);

-- A doing parent deleted under its worker: same thing.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('running') AS id;
SELECT procq.defer('child', queue => 'children', depends_on => '{1}') AS id;
SELECT id, status FROM procq.fetch_job();
DELETE FROM procq.jobs WHERE id = 1;
TABLE state;
SELECT id FROM procq.fetch_job(ARRAY['children']);

-- A failed parent deleted: its children stay cancelled as they were.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('broken') AS id;
SELECT procq.defer('child', queue => 'children', depends_on => '{1}') AS id;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'broken');
TABLE state;
DELETE FROM procq.jobs WHERE id = 1;
TABLE state;

------------------------------------------------------------------------
-- One DELETE of several related jobs.
--   chain 1 -> 2 -> 3 -> 4; delete 1, 2 and 3 at once
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('c1') AS id;
SELECT procq.defer('c2', depends_on => '{1}') AS id;
SELECT procq.defer('c3', depends_on => '{2}') AS id;
SELECT procq.defer('c4', depends_on => '{3}') AS id;
DELETE FROM procq.jobs WHERE id IN (1, 2, 3);
TABLE state;
TABLE deps;

-- Succeeded parents (1 and 3) and a todo parent (2) of the same child,
-- deleted at once: the child is cancelled, and its error names the parent
-- that had not succeeded (2), whichever row the DELETE handles first.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('done-1') AS id;
SELECT procq.defer('waiting', queue => 'slow') AS id;
SELECT procq.defer('done-3') AS id;
SELECT procq.defer('child', queue => 'children', depends_on => '{1,2,3}') AS id;
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(1, 'succeeded');
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(3, 'succeeded');
TABLE state;
DELETE FROM procq.jobs WHERE id IN (1, 2, 3);
TABLE state;
SELECT id FROM procq.fetch_job(ARRAY['children']);

-- Everything at once.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer_workflow('[
    {"key": "a", "task": "a"},
    {"key": "b", "task": "b", "depends_on": ["a"]},
    {"key": "c", "task": "c", "depends_on": ["a"]},
    {"key": "d", "task": "d", "depends_on": ["b", "c"]}]');
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'succeeded');
DELETE FROM procq.jobs;
SELECT (SELECT count(*) FROM procq.jobs) AS jobs,
       (SELECT count(*) FROM procq.job_dependencies) AS deps;

------------------------------------------------------------------------
-- Deleting a dependency row directly.
--   1 p1 and 2 p2 (both todo) -> 3 child;  4 p4 (succeeded) and 5 p5 -> 6
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p1', queue => 'slow') AS id;
SELECT procq.defer('p2', queue => 'slow') AS id;
SELECT procq.defer('child', queue => 'children', depends_on => '{1,2}') AS id;
SELECT procq.defer('p4') AS id;
SELECT procq.defer('p5', queue => 'slow') AS id;
SELECT procq.defer('child-2', queue => 'children', depends_on => '{4,5}') AS id;
SELECT id FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(4, 'succeeded');
TABLE state;
-- one of two pending parents removed: still waiting, for one
DELETE FROM procq.job_dependencies WHERE job_id = 3 AND depends_on = 1;
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 3;
SELECT id FROM procq.fetch_job(ARRAY['children']);
-- the last pending parent removed: released, and the parents are untouched
DELETE FROM procq.job_dependencies WHERE job_id = 3 AND depends_on = 2;
TABLE state;
SELECT id, task FROM procq.fetch_job(ARRAY['children']);
-- removing the dependency on a parent that already succeeded changes nothing
DELETE FROM procq.job_dependencies WHERE job_id = 6 AND depends_on = 4;
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 6;
SELECT id FROM procq.fetch_job(ARRAY['children']);
TABLE deps;
