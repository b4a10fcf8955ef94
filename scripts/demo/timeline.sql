-- timeline.sql: one row per job, in the order they started; times in
-- seconds since the workflow was deferred (scripts/demo.sh).  "after" is
-- the job's run_after: what its parents must have done for it to run.

WITH t AS (SELECT min(created_at) AS t0 FROM procq.jobs),
jobs AS (
    SELECT j.*,
           btrim(regexp_replace(coalesce(j.result::text, j.error, ''), '\s+', ' ', 'g')) AS outcome,
           (SELECT string_agg(d.depends_on::text, ',' ORDER BY d.depends_on)
              FROM procq.job_dependencies d WHERE d.job_id = j.id) AS parents
      FROM procq.jobs j)
SELECT id AS job, step_key AS step, coalesce(parents, '') AS parents,
       CASE WHEN parents IS NULL THEN '' ELSE run_after END AS after,
       coalesce(substring(worker FROM '^procq (worker \d+)'), worker, '') AS worker,
       coalesce(to_char(extract(epoch FROM started_at - t0), 'FM90.00'), '') AS "start (s)",
       coalesce(to_char(extract(epoch FROM finished_at - t0), 'FM90.00'), '') AS "end (s)",
       status,
       CASE WHEN length(outcome) > 60 THEN left(outcome, 57) || '...' ELSE outcome END
           AS "result / error"
  FROM jobs, t
 ORDER BY started_at NULLS LAST, finished_at, id;
