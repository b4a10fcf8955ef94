-- checks.sql: what went wrong, one line per problem; no rows when all is
-- well (scripts/demo.sh).

-- order, by each job's run_after: a 'success' job may start only after each
-- of its parents succeeded; a 'completion' job only after each parent ended
-- (succeeded, failed or cancelled); a 'failure' job the same, and one of
-- them must not have succeeded.
SELECT format('order: job %s (%s, run_after %s) started at %s, but parent %s (%s) %s',
              c.id, c.task, c.run_after, c.started_at, p.id, p.task,
              CASE WHEN p.finished_at IS NULL THEN 'is ' || p.status
                   ELSE p.status || ' at ' || p.finished_at END)
  FROM procq.job_dependencies d
  JOIN procq.jobs c ON c.id = d.job_id
  JOIN procq.jobs p ON p.id = d.depends_on
 WHERE c.started_at IS NOT NULL
   AND (p.finished_at IS NULL OR p.finished_at > c.started_at
        OR (c.run_after = 'success' AND p.status <> 'succeeded'))
UNION ALL
SELECT format('order: job %s (%s, run_after failure) started, but all its parents succeeded',
              c.id, c.task)
  FROM procq.jobs c
 WHERE c.run_after = 'failure' AND c.started_at IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM procq.job_dependencies d
                     JOIN procq.jobs p ON p.id = d.depends_on
                    WHERE d.job_id = c.id AND p.status <> 'succeeded')
UNION ALL
-- status: validate fails, so publish and notify are cancelled; alert runs
-- (validate failed), alert_load is cancelled (load succeeded); cleanup runs
-- after all of them; the rest succeed.
SELECT format('status: job %s (%s) is %s', id, step_key, status)
  FROM procq.jobs
 WHERE status <> CASE step_key WHEN 'validate' THEN 'failed'
                               WHEN 'publish' THEN 'cancelled'
                               WHEN 'notify' THEN 'cancelled'
                               WHEN 'alert_load' THEN 'cancelled'
                               ELSE 'succeeded' END::procq.job_status;
