-- The same cycle in batches of 100: take 100 jobs (commit), mark them done
-- (commit).
WITH taken AS (
    UPDATE floor_jobs SET status = 1
     WHERE id IN (SELECT id FROM floor_jobs WHERE status = 0 ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
    RETURNING id)
SELECT count(*) AS n, coalesce(array_agg(id), '{}')::text AS ids FROM taken \gset
\if :n > 0
UPDATE floor_jobs SET status = 2 WHERE id = ANY (CAST(:ids AS bigint[]));
\endif
