-- The minimal SKIP LOCKED single-job cycle: take one job (commit), mark it
-- done (commit).  One pgbench transaction = one job.
UPDATE floor_jobs SET status = 1
 WHERE id = (SELECT id FROM floor_jobs WHERE status = 0 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id AS job \gset
UPDATE floor_jobs SET status = 2 WHERE id = :job;
