-- procq.sql: helpers for bench/run.sh in the procq database (schema bench,
-- not part of the extension).  Wherever possible the figures come from the
-- jobs' own timestamps or are timed inside the server, so that client round
-- trips and the polling of the driver stay out of them.

CREATE SCHEMA bench;

-- Which procq functions this build has (the batch APIs may be missing).
CREATE FUNCTION bench.has_function(name text)
RETURNS boolean LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = 'procq' AND p.proname = name);
$$;

-- An empty queue: no handlers (so the workers take nothing), no jobs.
CREATE PROCEDURE bench.reset()
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM procq.unregister_handler(task) FROM procq.handlers;
    COMMIT;
    -- the workers lock jobs before job_dependencies: the same order here, or
    -- the TRUNCATE deadlocks with a worker's claim or bookkeeping
    LOCK TABLE procq.jobs, procq.job_dependencies IN ACCESS EXCLUSIVE MODE;
    TRUNCATE procq.job_dependencies, procq.jobs RESTART IDENTITY;
END
$$;

-- n ready jobs of a task, inserted in one statement straight into the table
-- (fast, and without waking anybody: for setting a scenario up, not timed).
CREATE PROCEDURE bench.fill(task text, n int)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO procq.jobs (task, args)
        SELECT fill.task, jsonb_build_object('i', i) FROM generate_series(1, n) AS i;
    COMMIT;
    ANALYZE procq.jobs;
END
$$;

-- The same n jobs as workflows, through procq.defer_workflow (not timed):
-- 'fanout' is one job, n - 2 children of it and one job depending on all of
-- those; 'chains' is n / 10 chains of 10 jobs each.
CREATE PROCEDURE bench.workflow(task text, shape text, n int)
LANGUAGE plpgsql AS $$
DECLARE
    steps jsonb;
BEGIN
    IF shape = 'fanout' THEN
        SELECT jsonb_build_array(jsonb_build_object('key', 'root', 'task', task))
               || jsonb_agg(jsonb_build_object('key', 'm' || i, 'task', task,
                                               'args', jsonb_build_object('i', i),
                                               'depends_on', jsonb_build_array('root')))
               || jsonb_build_array(jsonb_build_object(
                      'key', 'sink', 'task', task,
                      'depends_on', (SELECT jsonb_agg('m' || j) FROM generate_series(1, n - 2) AS j)))
          INTO steps
          FROM generate_series(1, n - 2) AS i;
    ELSIF shape = 'chains' THEN
        SELECT jsonb_agg(jsonb_build_object('key', c || '.' || s, 'task', task,
                                            'args', jsonb_build_object('chain', c, 'step', s))
                         || CASE WHEN s > 1
                                 THEN jsonb_build_object('depends_on', jsonb_build_array(c || '.' || (s - 1)))
                                 ELSE '{}' END
                         ORDER BY c, s)
          INTO steps
          FROM generate_series(1, n / 10) AS c, generate_series(1, 10) AS s;
    ELSIF shape IN ('cleanup', 'cleanup_fail') THEN
        -- 'root', n - 3 steps depending on it, 'join' (run_after 'success')
        -- depending on all of them, and 'cleanup' (run_after 'completion')
        -- depending on the join and on every step, so that it runs once all
        -- of them have ended, however they ended.  'cleanup_fail': the first
        -- step is of the task <task>_fail, whose handler fails (registered
        -- here, so that nothing runs before bench.release): the join is
        -- cancelled, the other steps and the clean-up still run.
        IF shape = 'cleanup_fail' THEN
            PERFORM procq.register_handler(task || '_fail', 'sql', 'SELECT 1 / ($2 - $2)');
        END IF;
        SELECT jsonb_build_array(jsonb_build_object('key', 'root', 'task', task))
               || jsonb_agg(jsonb_build_object('key', 'm' || i,
                                               'task', CASE WHEN i = 1 AND shape = 'cleanup_fail'
                                                            THEN task || '_fail' ELSE task END,
                                               'args', jsonb_build_object('i', i),
                                               'depends_on', jsonb_build_array('root'))
                            ORDER BY i)
               || jsonb_build_array(
                      jsonb_build_object(
                          'key', 'join', 'task', task,
                          'depends_on', (SELECT jsonb_agg('m' || j ORDER BY j) FROM generate_series(1, n - 3) AS j)),
                      jsonb_build_object(
                          'key', 'cleanup', 'task', task, 'run_after', 'completion',
                          'depends_on', (SELECT jsonb_agg('m' || j ORDER BY j) FROM generate_series(1, n - 3) AS j)
                                        || '["join"]'::jsonb))
          INTO steps
          FROM generate_series(1, n - 3) AS i;
    ELSE
        RAISE EXCEPTION 'bench.workflow: unknown shape %', shape;
    END IF;
    PERFORM procq.defer_workflow(steps);
    COMMIT;
    ANALYZE procq.jobs;
    ANALYZE procq.job_dependencies;
END
$$;

-- Start a worker run: register the handler of the prepared jobs' task and
-- defer one more job of it, in one transaction, whose commit wakes the
-- workers; the clock starts at that job's created_at.
CREATE FUNCTION bench.release(task text, kind text, command text)
RETURNS void LANGUAGE sql AS $$
    SELECT procq.register_handler(task, kind, command);
    SELECT procq.defer(task, '{"i": "release"}');
$$;

-- Whether jobs are still ready or running (through the partial indexes).
CREATE FUNCTION bench.busy()
RETURNS boolean LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM procq.jobs
                    WHERE status = 'todo' AND pending_parents = 0
                      AND NOT lock_blocked AND NOT delayed)
        OR EXISTS (SELECT 1 FROM procq.jobs WHERE status = 'doing');
$$;

-- Jobs per second of a worker run: jobs finished since the release, over
-- the time from the release to the last finish.  A run stopped at its time
-- limit counts what finished by then.  Every finished job must have
-- succeeded.
CREATE FUNCTION bench.jobs_per_s(task text)
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
    n bigint;
    bad bigint;
BEGIN
    SELECT count(*) FILTER (WHERE finished_at IS NOT NULL),
           count(*) FILTER (WHERE status IN ('failed', 'cancelled')),
           max(finished_at)
      INTO n, bad, t1
      FROM procq.jobs WHERE jobs.task = jobs_per_s.task;
    IF bad > 0 THEN
        RAISE EXCEPTION 'bench.jobs_per_s: % jobs of % failed or were cancelled', bad, task;
    END IF;
    SELECT created_at INTO t0 FROM procq.jobs
     WHERE jobs.task = jobs_per_s.task AND args = '{"i": "release"}';
    IF n = 0 OR t1 <= t0 THEN
        RAISE EXCEPTION 'bench.jobs_per_s: no job of % finished', task;
    END IF;
    RETURN n / extract(epoch FROM t1 - t0);
END
$$;

-- Jobs per second of a worker run of a whole workflow (bench.workflow),
-- every task counted: jobs final since the release, over the time from the
-- release to the last of them.  When all jobs are final, exactly `failed`
-- of them must have failed and `cancelled` been cancelled (the shape's
-- plan): anything else is an error, so that a run whose conditions were not
-- obeyed (a clean-up cancelled, a join that ran) gives no figure.
CREATE FUNCTION bench.flow_per_s(failed int, cancelled int)
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
    n bigint;
    open bigint;
    nfailed bigint;
    ncancelled bigint;
BEGIN
    SELECT count(*) FILTER (WHERE finished_at IS NOT NULL),
           count(*) FILTER (WHERE status IN ('todo', 'doing')),
           count(*) FILTER (WHERE status = 'failed'),
           count(*) FILTER (WHERE status = 'cancelled'),
           max(finished_at)
      INTO n, open, nfailed, ncancelled, t1
      FROM procq.jobs;
    IF open = 0 AND (nfailed <> failed OR ncancelled <> cancelled) THEN
        RAISE EXCEPTION 'bench.flow_per_s: % failed and % cancelled, expected % and %',
            nfailed, ncancelled, failed, cancelled;
    END IF;
    SELECT created_at INTO t0 FROM procq.jobs WHERE args = '{"i": "release"}';
    IF n = 0 OR t1 <= t0 THEN
        RAISE EXCEPTION 'bench.flow_per_s: no job finished';
    END IF;
    RETURN n / extract(epoch FROM t1 - t0);
END
$$;

-- The defer-to-start latency on idle workers: n jobs deferred one at a
-- time, each in its own transaction after a random pause of 20 to 50 ms
-- (so that the workers are idle, waiting on their latches), each waited for
-- before the next (this session sleeps while a worker picks the job up).
-- Returns the median and 95th percentile of started_at - created_at in
-- milliseconds (created_at is taken at the insert: this includes the
-- defer's commit).  With procq.poll_interval = 1s, polling alone would give
-- a median of about 500 ms: only the wake-up at commit explains a fast start.
CREATE PROCEDURE bench.latency(
    n int, INOUT median_ms float8 DEFAULT NULL, INOUT p95_ms float8 DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    job bigint;
    waited int;
BEGIN
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
                RAISE EXCEPTION 'bench.latency: job % did not succeed within 20 s', job;
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

-- fetch_job's cost with other jobs beside the ready ones.  bench.fetch_setup
-- fills procq.jobs for one scenario: the jobs that must not slow fetch_job
-- down (`others` of them), then `ready` ready jobs with higher ids (so that
-- a scan in (priority, id) order would meet the others first).
CREATE PROCEDURE bench.fetch_setup(scenario text, others int, ready int)
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE procq.job_dependencies, procq.jobs RESTART IDENTITY;
    IF scenario = 'parents' THEN
        -- one parent that is running and the others waiting on it
        PERFORM procq.defer('parent');
        PERFORM procq.fetch_job();
        INSERT INTO procq.jobs (task, pending_parents)
            SELECT 'waiting child', 1 FROM generate_series(1, others);
        INSERT INTO procq.job_dependencies (job_id, depends_on)
            SELECT id, 1 FROM procq.jobs WHERE id > 1;
    ELSIF scenario = 'future' THEN
        INSERT INTO procq.jobs (task, scheduled_at, delayed)
            SELECT 'later', now() + interval '1 day', true
            FROM generate_series(1, others);
    ELSIF scenario = 'lock' THEN
        -- the lock's head is running; the others queue behind it
        PERFORM procq.defer('head', lock => 'busy');
        PERFORM procq.fetch_job();
        INSERT INTO procq.jobs (task, lock, lock_blocked)
            SELECT 'behind lock', 'busy', true FROM generate_series(1, others);
    ELSIF scenario <> 'empty' THEN
        RAISE EXCEPTION 'unknown scenario %', scenario;
    END IF;
    PERFORM procq.defer('ready') FROM generate_series(1, ready);
END
$$;

-- bench.fetch times n calls of procq.fetch_job() inside the server, each in
-- its own transaction (as workers call it), and returns the median in
-- microseconds.
CREATE PROCEDURE bench.fetch(n int, INOUT median_us float8 DEFAULT NULL)
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
            RAISE EXCEPTION 'bench.fetch: no job to fetch at iteration %', i;
        END IF;
        COMMIT;
    END LOOP;
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO median_us
      FROM unnest(took) AS x;
END
$$;

-- Completions per second of the steady-state run in [since, since + secs).
CREATE FUNCTION bench.finished_per_s(task text, since timestamptz, secs float8)
RETURNS float8 LANGUAGE sql AS $$
    SELECT count(*) / secs FROM procq.jobs
     WHERE jobs.task = finished_per_s.task AND status = 'succeeded'
       AND finished_at >= since AND finished_at < since + secs * interval '1 second';
$$;

-- issue 10, events: whether the last run left the events it should: with
-- procq.record_events on, a 'fetched' event with a worker and a
-- 'succeeded' event for every succeeded job; with it off, none at all.
CREATE FUNCTION bench.events_ok(recorded boolean)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    jobs bigint;
    fetched bigint;
    succeeded bigint;
    total bigint;
BEGIN
    SELECT count(*) INTO jobs FROM procq.jobs WHERE status = 'succeeded';
    SELECT count(*) FILTER (WHERE e.event = 'fetched' AND e.worker IS NOT NULL),
           count(*) FILTER (WHERE e.event = 'succeeded'), count(*)
      INTO fetched, succeeded, total
      FROM procq.job_events e JOIN procq.jobs j ON j.id = e.job_id
     WHERE j.status = 'succeeded';
    IF recorded THEN
        RETURN jobs > 0 AND fetched = jobs AND succeeded = jobs;
    END IF;
    RETURN jobs > 0 AND (SELECT count(*) FROM procq.job_events) = 0;
END
$$;
