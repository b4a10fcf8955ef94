-- Shared setup of the conditions_*.sql regression files (issue 9): a fresh
-- procq, the view invariant (pending_parents and failed_parents recomputed
-- from the parents' statuses; no row when the stored counters agree), the
-- view state, and pg_temp.run(task, status) that fetches and finishes one
-- ready job.  Included with \i from the repository's top directory, where
-- pg_regress runs.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

CREATE TEMP VIEW invariant AS
    SELECT j.id, j.run_after, j.status, j.pending_parents, j.failed_parents,
           c.pending AS should_pending, c.failed AS should_failed
      FROM procq.jobs j
     CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE CASE WHEN j.run_after = 'success'
                                           THEN p.status <> 'succeeded'
                                           ELSE p.status IN ('todo', 'doing') END)::int AS pending,
               count(*) FILTER (WHERE p.status IN ('failed', 'cancelled'))::int AS failed
          FROM procq.job_dependencies d JOIN procq.jobs p ON p.id = d.depends_on
         WHERE d.job_id = j.id) c
     WHERE (j.pending_parents, j.failed_parents) IS DISTINCT FROM (c.pending, c.failed)
     ORDER BY j.id;

CREATE TEMP VIEW state AS
    SELECT id, task, run_after, status, pending_parents AS pending,
           failed_parents AS failed, cancelled_by, error,
           (status = 'todo' AND pending_parents = 0 AND NOT lock_blocked
            AND NOT delayed) AS ready
      FROM procq.jobs ORDER BY id;

-- run: fetch the ready job of task t (an error if it is not ready) and
-- finish it with status s.
CREATE FUNCTION pg_temp.run(t text, s procq.job_status DEFAULT 'succeeded')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    j bigint;
BEGIN
    SELECT id INTO j FROM procq.fetch_job(tasks => ARRAY[t]);
    IF j IS NULL THEN
        RAISE EXCEPTION 'job % is not ready', t;
    END IF;
    PERFORM procq.finish_job(j, s, error => CASE WHEN s = 'failed' THEN t || ' broke' END);
    RETURN j;
END $$;
