-- checks.sql: what went wrong, one line per problem; no rows when all is
-- well (scripts/demo.sh).

-- order: a job may start only after each of its parents succeeded.
SELECT format('order: job %s (%s) started at %s, but parent %s (%s) %s',
              c.id, c.task, c.started_at, p.id, p.task,
              CASE WHEN p.status = 'succeeded' THEN 'finished at ' || p.finished_at
                   ELSE 'is ' || p.status END)
  FROM procq.job_dependencies d
  JOIN procq.jobs c ON c.id = d.job_id
  JOIN procq.jobs p ON p.id = d.depends_on
 WHERE c.started_at IS NOT NULL
   AND (p.status <> 'succeeded' OR p.finished_at > c.started_at)
UNION ALL
-- status: validate fails, so publish and notify are cancelled; the rest succeed.
SELECT format('status: job %s (%s) is %s', id, task, status)
  FROM procq.jobs
 WHERE status <> CASE task WHEN 'validate' THEN 'failed'
                           WHEN 'publish' THEN 'cancelled'
                           WHEN 'notify' THEN 'cancelled'
                           ELSE 'succeeded' END::procq.job_status;
