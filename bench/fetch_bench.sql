-- fetch_bench.sql: helpers for bench/fetch_bench.sh (not part of the extension).
--
-- bench_fetch times n calls of procq.fetch_job() inside the server, each in
-- its own transaction (as workers call it), and returns the median in
-- microseconds.  Timing server-side keeps client round trips out of the
-- figures.

CREATE OR REPLACE PROCEDURE public.bench_fetch(n int, INOUT median_us float8 DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    took float8[] := '{}';
    got bigint;
BEGIN
    FOR i IN 1..n LOOP
        t0 := clock_timestamp();
        SELECT id INTO got FROM procq.fetch_job();
        took := took || (extract(epoch FROM clock_timestamp() - t0) * 1e6)::float8;
        IF got IS NULL THEN
            RAISE EXCEPTION 'bench_fetch: no job to fetch at iteration %', i;
        END IF;
        COMMIT;
    END LOOP;
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO median_us
    FROM unnest(took) AS x;
END
$$;

-- bench_setup fills procq.jobs for one scenario: the jobs that must not
-- slow fetch_job down, then `ready` ready jobs with higher ids (so that a
-- scan in (priority, id) order would meet the waiting jobs first).
CREATE OR REPLACE PROCEDURE public.bench_setup(scenario text, ready int)
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE procq.job_dependencies, procq.jobs RESTART IDENTITY;
    IF scenario = 'parents' THEN
        -- one parent that is running and 1,000,000 children waiting on it
        PERFORM procq.defer('parent');
        PERFORM procq.fetch_job();
        INSERT INTO procq.jobs (task, pending_parents)
            SELECT 'waiting child', 1 FROM generate_series(1, 1000000);
        INSERT INTO procq.job_dependencies (job_id, depends_on)
            SELECT id, 1 FROM procq.jobs WHERE id > 1;
    ELSIF scenario = 'future' THEN
        INSERT INTO procq.jobs (task, scheduled_at, delayed)
            SELECT 'later', now() + interval '1 day', true
            FROM generate_series(1, 1000000);
    ELSIF scenario = 'lock' THEN
        -- the lock's head is running; 100,000 jobs queue behind it
        PERFORM procq.defer('head', lock => 'busy');
        PERFORM procq.fetch_job();
        INSERT INTO procq.jobs (task, lock, lock_blocked)
            SELECT 'behind lock', 'busy', true FROM generate_series(1, 100000);
    ELSIF scenario <> 'empty' THEN
        RAISE EXCEPTION 'unknown scenario %', scenario;
    END IF;
    PERFORM procq.defer('ready') FROM generate_series(1, ready);
END
$$;
