-- conditions.sql (issue 9): run_after 'success', 'completion' and 'failure'
-- at depth.  A failed job cancels its 'success' descendants and stops at
-- 'completion'/'failure' ones, which run once all their parents are final;
-- their own children follow their own conditions after they end.  A
-- 'failure' job whose parents all succeeded is cancelled, and its
-- 'success' children with it.  Every step checks the bookkeeping
-- invariant: pending_parents and failed_parents recomputed from the
-- parents' statuses equal the stored ones for every job (view invariant:
-- no row).
\i test/sql/include/conditions_setup.sql

-- The graph, built from an empty table:
--   1 a -> 2 b -> 3 c -> 4 cleanup (completion) -> 6 after-cleanup
--                     -> 5 alert (failure)       -> 7 after-alert
--                                 4, 5           -> 8 report (completion)
CREATE PROCEDURE pg_temp.make_graph()
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
    PERFORM procq.defer('a');
    PERFORM procq.defer('b', depends_on => '{1}');
    PERFORM procq.defer('c', depends_on => '{2}');
    PERFORM procq.defer('cleanup', depends_on => '{3}', run_after => 'completion');
    PERFORM procq.defer('alert', depends_on => '{3}', run_after => 'failure');
    PERFORM procq.defer('after-cleanup', depends_on => '{4}');
    PERFORM procq.defer('after-alert', depends_on => '{5}');
    PERFORM procq.defer('report', depends_on => '{4,5}', run_after => 'completion');
END $$;

------------------------------------------------------------------------
-- The root fails: b and c are cancelled, the walk stops at cleanup and
-- alert, which are ready (their parent c is final, and did not succeed).
CALL pg_temp.make_graph();
TABLE state;
SELECT pg_temp.run('a', 'failed');
TABLE state;
TABLE invariant;
-- their children wait for them, and then follow their own conditions:
-- cleanup succeeds, after-cleanup runs; alert fails, after-alert is
-- cancelled, report (completion) runs once both ended
SELECT pg_temp.run('cleanup');
TABLE state;
TABLE invariant;
SELECT pg_temp.run('alert', 'failed');
TABLE state;
TABLE invariant;
SELECT pg_temp.run('after-cleanup');
SELECT pg_temp.run('report');
SELECT id, task, status FROM state WHERE status IN ('todo', 'doing');
TABLE invariant;

------------------------------------------------------------------------
-- Everything succeeds: cleanup runs; alert is cancelled because all its
-- parents succeeded, after-alert with it; report runs (alert is final).
CALL pg_temp.make_graph();
SELECT pg_temp.run('a');
SELECT pg_temp.run('b');
TABLE state;
SELECT pg_temp.run('c');
TABLE state;
TABLE invariant;
SELECT pg_temp.run('cleanup');
SELECT pg_temp.run('report');
SELECT pg_temp.run('after-cleanup');
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- 'completion' after a cancelled parent (cancel_job of the root): b and c
-- cancelled, cleanup and alert ready; a cancelled parent is one that did
-- not succeed.
CALL pg_temp.make_graph();
SELECT procq.cancel_job(1);
TABLE state;
TABLE invariant;
-- cleanup is cancelled by hand: after-cleanup is cancelled, report still
-- waits for alert
SELECT procq.cancel_job(4);
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- Several parents.  f (failure) and g (completion) depend on x and y; h
-- (failure) on x and z.  x succeeds: all still wait.  y fails: f and g are
-- ready (x succeeded, y failed).  z succeeds: h, whose parents all
-- succeeded, is cancelled.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('x'), procq.defer('y'), procq.defer('z');
SELECT procq.defer('f', depends_on => '{1,2}', run_after => 'failure'),
       procq.defer('g', depends_on => '{1,2}', run_after => 'completion'),
       procq.defer('h', depends_on => '{1,3}', run_after => 'failure');
SELECT pg_temp.run('x');
TABLE state;
TABLE invariant;
SELECT pg_temp.run('y', 'failed');
TABLE state;
TABLE invariant;
SELECT pg_temp.run('z');
TABLE state;
TABLE invariant;
-- f and g are fetched and run
SELECT pg_temp.run('f');
SELECT pg_temp.run('g', 'failed');
SELECT id, task, status FROM state WHERE status IN ('todo', 'doing');
TABLE invariant;

------------------------------------------------------------------------
-- A parent that is still running keeps a 'completion' child waiting while
-- its other parent fails; it runs once that one is final too (here:
-- cancelled while it ran).
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p1'), procq.defer('p2');
SELECT procq.defer('both', depends_on => '{1,2}', run_after => 'completion');
SELECT id FROM procq.fetch_job(tasks => '{p1}');
SELECT pg_temp.run('p2', 'failed');
TABLE state;
TABLE invariant;
SELECT procq.finish_job(1, 'cancelled');
TABLE state;
TABLE invariant;

------------------------------------------------------------------------
-- A failed job at depth: 1 -> 2 (completion) -> 3 (success) -> 4
-- (failure).  1 fails: 2 is ready, 3 and 4 wait.  2 fails: 3 is
-- cancelled, 4 (failure, its parent cancelled) is ready.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('d1');
SELECT procq.defer('d2', depends_on => '{1}', run_after => 'completion');
SELECT procq.defer('d3', depends_on => '{2}');
SELECT procq.defer('d4', depends_on => '{3}', run_after => 'failure');
SELECT pg_temp.run('d1', 'failed');
TABLE state;
SELECT pg_temp.run('d2', 'failed');
TABLE state;
TABLE invariant;
SELECT pg_temp.run('d4');
TABLE invariant;

------------------------------------------------------------------------
-- A DBA's UPDATEs obey the same rules: a failed job set to succeeded is no
-- longer counted as failed (a 'failure' child that was ready and has no
-- other failed parent is then cancelled: all its parents succeeded), and
-- a todo 'completion' child of a job a DBA cancels becomes ready.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('u1');
SELECT procq.defer('u2', depends_on => '{1}', run_after => 'failure'),
       procq.defer('u3', depends_on => '{1}', run_after => 'completion');
UPDATE procq.jobs SET status = 'failed', error = 'by hand' WHERE id = 1;
TABLE state;
TABLE invariant;
UPDATE procq.jobs SET status = 'cancelled' WHERE id = 1;
TABLE state;
TABLE invariant;
UPDATE procq.jobs SET status = 'succeeded' WHERE id = 1;
TABLE state;
TABLE invariant;
