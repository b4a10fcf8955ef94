-- conditions_delete.sql (issue 9): deleting a parent, before and after it
-- ended, and deleting a dependency row, per run_after.  A parent deleted
-- before it ended counts as ended without success (failed_parents keeps
-- it: the invariant view below therefore lists jobs whose parent was
-- deleted, with the stored and the recomputed counts, and the expected
-- output shows the one extra failed parent each); a parent deleted after
-- it ended changes nothing; a dependency row a DBA deletes makes the child
-- wait for one parent less and forget that parent's failure.
\i test/sql/include/conditions_setup.sql

-- children of p (and of q, which stays) for each run_after:
--   s (success), c (completion), f (failure)
CREATE PROCEDURE pg_temp.make_graph()
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
    PERFORM procq.defer('p');
    PERFORM procq.defer('q');
    PERFORM procq.defer('s', depends_on => '{1,2}');
    PERFORM procq.defer('c', depends_on => '{1,2}', run_after => 'completion');
    PERFORM procq.defer('f', depends_on => '{1,2}', run_after => 'failure');
    PERFORM procq.defer('s-below', depends_on => '{3}');
    PERFORM procq.defer('c-below', depends_on => '{3}', run_after => 'completion');
END $$;

------------------------------------------------------------------------
-- p deleted while todo: it ended without success.  s is cancelled (and
-- s-below; c-below is ready), c and f wait for q only and count one
-- failed parent (the deleted one).
CALL pg_temp.make_graph();
DELETE FROM procq.jobs WHERE id = 1;
TABLE state;
TABLE invariant;
-- q succeeds: c and f run (f: a parent did not succeed)
SELECT pg_temp.run('q');
SELECT pg_temp.run('c'), pg_temp.run('f'), pg_temp.run('c-below');
TABLE invariant;

------------------------------------------------------------------------
-- p deleted while doing: the same
CALL pg_temp.make_graph();
SELECT id FROM procq.fetch_job(tasks => '{p}');
DELETE FROM procq.jobs WHERE id = 1;
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- p deleted after it succeeded: nothing changes; q then succeeds: s and c
-- run, f is cancelled (all its parents succeeded)
CALL pg_temp.make_graph();
SELECT pg_temp.run('p');
DELETE FROM procq.jobs WHERE id = 1;
TABLE state;
TABLE invariant;
SELECT pg_temp.run('q');
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- p deleted after it failed: nothing changes (its failure stays counted)
CALL pg_temp.make_graph();
SELECT pg_temp.run('p', 'failed');
TABLE state;
DELETE FROM procq.jobs WHERE id = 1;
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- A DBA deletes dependency rows on p while p is todo: each child waits for
-- q only (s, c and f alike); q succeeds: s and c run, f is cancelled
CALL pg_temp.make_graph();
DELETE FROM procq.job_dependencies WHERE depends_on = 1;
TABLE state;
TABLE invariant;
SELECT pg_temp.run('q');
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- ... after p failed and q succeeded: c and f were ready; deleting their
-- rows on p forgets p's failure: f is cancelled (its parents all
-- succeeded), c stays ready; s stays cancelled
CALL pg_temp.make_graph();
SELECT pg_temp.run('p', 'failed'), pg_temp.run('q');
TABLE state;
DELETE FROM procq.job_dependencies WHERE depends_on = 1;
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- ... the last pending parent's row: f on p, while q failed: f is ready
CALL pg_temp.make_graph();
SELECT pg_temp.run('q', 'failed');
TABLE state;
DELETE FROM procq.job_dependencies WHERE depends_on = 1 AND job_id = 5;
TABLE state;
TABLE invariant;
