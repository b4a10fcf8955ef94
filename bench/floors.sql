-- floors.sql: the floors of procq's benchmark (bench/run.sh), in a database
-- of their own: the least a PostgreSQL queue can do for each job, on a
-- minimal table.  A job is a row with an id, its args and a status (0 todo,
-- 1 doing, 2 done); the ready jobs are a partial index in fetch order.
-- The cycles themselves are the pgbench scripts bench/pgbench/floor_*.sql.

CREATE TABLE floor_jobs (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    args   jsonb NOT NULL DEFAULT '{}',
    status smallint NOT NULL DEFAULT 0,
    result jsonb
);
CREATE INDEX floor_jobs_ready_idx ON floor_jobs (id) WHERE status = 0;

-- n ready jobs, on an empty table (not timed).
CREATE PROCEDURE floor_fill(n int)
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE floor_jobs RESTART IDENTITY;
    INSERT INTO floor_jobs (args) SELECT jsonb_build_object('i', i) FROM generate_series(1, n) AS i;
    COMMIT;
    ANALYZE floor_jobs;
END
$$;
