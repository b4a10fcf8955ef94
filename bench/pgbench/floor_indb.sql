-- The in-database set-based floor: claim 100 jobs, compute each one's
-- result (its id, as the no-op handler SELECT $2 does) and mark them done,
-- in one statement and one transaction.
WITH taken AS (SELECT id FROM floor_jobs WHERE status = 0 ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
UPDATE floor_jobs AS j SET status = 2, result = to_jsonb(j.id) FROM taken WHERE j.id = taken.id;
