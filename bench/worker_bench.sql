-- worker_bench.sql: helpers for bench/worker_bench.sh (not part of the
-- extension).  Both procedures time the background workers from the jobs'
-- own timestamps, so client round trips stay out of the figures.

-- Throughput runs: bench_prepare defers n - 1 jobs of task 'bench' while no
-- handler exists for it (the workers leave them alone); bench_release
-- registers the handler and defers the n-th job in one transaction, whose
-- commit wakes the workers: the clock starts at that job's created_at.
-- The script then waits from outside (a session that sleeps in a query
-- would hold back the xmin horizon and slow the workers' index scans), and
-- bench_jobs_per_s reads the rate from the jobs' timestamps.
CREATE OR REPLACE PROCEDURE public.bench_prepare(n int)
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE procq.job_dependencies, procq.jobs RESTART IDENTITY;
    PERFORM procq.unregister_handler('bench');
    PERFORM procq.defer('bench', jsonb_build_object('i', i)) FROM generate_series(1, n - 1) AS i;
    COMMIT;
    ANALYZE procq.jobs;
END
$$;

CREATE OR REPLACE FUNCTION public.bench_release(handler text)
RETURNS void LANGUAGE sql AS $$
    SELECT procq.register_handler('bench', 'sql', handler);
    SELECT procq.defer('bench', '{"i": "last"}');
$$;

-- Whether jobs are still ready or running (through the partial indexes).
CREATE OR REPLACE FUNCTION public.bench_busy()
RETURNS boolean LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM procq.jobs
                    WHERE status = 'todo' AND pending_parents = 0
                      AND NOT lock_blocked AND NOT delayed)
        OR EXISTS (SELECT 1 FROM procq.jobs WHERE status = 'doing');
$$;

CREATE OR REPLACE FUNCTION public.bench_jobs_per_s()
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
    n bigint;
    left_over bigint;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE status <> 'succeeded'), max(finished_at)
      INTO n, left_over, t1 FROM procq.jobs;
    IF left_over > 0 THEN
        RAISE EXCEPTION 'bench_jobs_per_s: % jobs did not succeed', left_over;
    END IF;
    SELECT created_at INTO t0 FROM procq.jobs ORDER BY id DESC LIMIT 1;
    RETURN n / extract(epoch FROM t1 - t0);
END
$$;

-- bench_latency defers n jobs of task 'lat' one at a time, each in its own
-- transaction after a random pause of 20 to 50 ms (so that the workers are
-- idle, waiting on their latches), and waits for each to succeed before the
-- next.  The pause comes first and the wait polls only after 5 ms, so that
-- this session sleeps while a worker picks the job up.  Returns the median
-- and 95th percentile of started_at - created_at in milliseconds (created_at
-- is taken at the insert, so this includes the commit).
CREATE OR REPLACE PROCEDURE public.bench_latency(
    n int, INOUT median_ms float8 DEFAULT NULL, INOUT p95_ms float8 DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    job bigint;
    waited int;
BEGIN
    TRUNCATE procq.job_dependencies, procq.jobs RESTART IDENTITY;
    PERFORM procq.register_handler('lat', 'sql', 'SELECT $2');
    COMMIT;

    FOR i IN 1..n LOOP
        PERFORM pg_sleep(0.02 + random() * 0.03);
        job := procq.defer('lat');
        COMMIT;
        waited := 0;
        LOOP
            PERFORM pg_sleep(0.005);
            EXIT WHEN (SELECT status = 'succeeded' FROM procq.jobs WHERE id = job);
            waited := waited + 1;
            IF waited > 4000 THEN
                RAISE EXCEPTION 'bench_latency: job % did not succeed within 20 s', job;
            END IF;
        END LOOP;
    END LOOP;

    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)
      INTO median_ms, p95_ms
      FROM (SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms
              FROM procq.jobs WHERE task = 'lat') AS l;
END
$$;
