-- The minimal SKIP LOCKED single-job cycle: take one job (commit), mark it
-- done (commit).  (An empty queue takes nothing; bench/run.sh counts the
-- jobs done.)
WITH taken AS (
    UPDATE floor_jobs SET status = 1
     WHERE id = (SELECT id FROM floor_jobs WHERE status = 0 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id)
SELECT coalesce(max(id), 0) AS job FROM taken \gset
\if :job > 0
UPDATE floor_jobs SET status = 2 WHERE id = :job;
\endif
