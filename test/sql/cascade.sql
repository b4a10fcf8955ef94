-- cascade.sql (rule 2): when a job ends without success (failed after its
-- last attempt, cancelled with cancel_job or finish_job, deleted before it
-- succeeded, or set cancelled/failed by a DBA's UPDATE), every todo
-- descendant is cancelled, transitively.  The error names the parent it was
-- cancelled through (and the root cause), cancelled_by records that parent,
-- and a child with several parents is cancelled when any one of them fails.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

-- The same graph for each case, built from an empty queue:
--   1 root -> 2 child -> 3 grandchild -> 4 great-grandchild
--   1 root -> 5 child-b -> 6 grandchild-b
--   7 other-root -> 9 other-child
--   1 root and 7 other-root -> 8 two-parents
-- Only the roots are in queue 'default'.
CREATE PROCEDURE pg_temp.make_graph(root_attempts integer DEFAULT 1)
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
    PERFORM procq.defer('root', max_attempts => root_attempts);
    PERFORM procq.defer('child', queue => 'children', depends_on => '{1}');
    PERFORM procq.defer('grandchild', queue => 'children', depends_on => '{2}');
    PERFORM procq.defer('great-grandchild', queue => 'children', depends_on => '{3}');
    PERFORM procq.defer('child-b', queue => 'children', depends_on => '{1}');
    PERFORM procq.defer('grandchild-b', queue => 'children', depends_on => '{5}');
    PERFORM procq.defer('other-root');
    PERFORM procq.defer('two-parents', queue => 'children', depends_on => '{1,7}');
    PERFORM procq.defer('other-child', queue => 'children', depends_on => '{7}');
END $$;

CREATE TEMP VIEW state AS
    SELECT id, task, status, pending_parents, cancelled_by, error,
           (finished_at IS NOT NULL) AS finished
      FROM procq.jobs ORDER BY id;

-- Descendants of root 1 (jobs 2-6 and 8) that are still todo: must be none
-- once the root ended without success.
CREATE TEMP VIEW lingering AS
    SELECT count(*) AS todo_descendants_of_1
      FROM procq.jobs
     WHERE id IN (2, 3, 4, 5, 6, 8) AND status = 'todo';

------------------------------------------------------------------------
-- Failed after its last attempt.
CALL pg_temp.make_graph(root_attempts => 2);
TABLE state;
-- the first failure leaves attempts: back to todo, nothing cancelled
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'disk full');
TABLE state;
-- the second is final: the whole subtree of 1 is cancelled, 7 and 9 are not
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'disk full again');
TABLE state;
TABLE lingering;
SELECT id FROM procq.jobs WHERE status = 'todo' ORDER BY id;
-- nothing of the subtree can be fetched; the other root still can
SELECT id FROM procq.fetch_job(ARRAY['children']);
SELECT id FROM procq.fetch_job();

------------------------------------------------------------------------
-- Cancelled with cancel_job while todo.
CALL pg_temp.make_graph();
SELECT procq.cancel_job(1);
TABLE state;
TABLE lingering;
-- cancelling again, or cancelling a doing job, returns false and changes
-- nothing; a missing job is an error
SELECT procq.cancel_job(1);
SELECT id FROM procq.fetch_job();
SELECT procq.cancel_job(7);
SELECT id, status FROM procq.jobs WHERE id IN (7, 8, 9) ORDER BY id;
SELECT procq.cancel_job(999);

-- cancel_job on a job in the middle cancels only what is below it.
CALL pg_temp.make_graph();
SELECT procq.cancel_job(2);
TABLE state;

------------------------------------------------------------------------
-- Cancelled by its worker: finish_job(status => 'cancelled').
CALL pg_temp.make_graph();
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, status => 'cancelled', error => 'operator said stop');
TABLE state;
TABLE lingering;

------------------------------------------------------------------------
-- Deleted before it succeeded.
CALL pg_temp.make_graph();
DELETE FROM procq.jobs WHERE id = 1;
TABLE state;
TABLE lingering;

------------------------------------------------------------------------
-- A DBA's UPDATE to cancelled cascades like the API.
CALL pg_temp.make_graph();
UPDATE procq.jobs SET status = 'cancelled', finished_at = now() WHERE id = 1;
TABLE state;
TABLE lingering;

-- So does an UPDATE to failed, here of a doing job (its lease is cleared
-- too, as the table requires).
CALL pg_temp.make_graph();
SELECT id FROM procq.fetch_job();
UPDATE procq.jobs SET status = 'failed', finished_at = now(),
       lease_expires_at = NULL, error = 'killed by DBA'
 WHERE id = 1;
TABLE state;
TABLE lingering;

-- The other root failing cancels its own subtree the same way.
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(7, 'failed');
TABLE state;
SELECT count(*) AS todo_left FROM procq.jobs WHERE status = 'todo';
