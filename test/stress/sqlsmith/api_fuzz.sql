-- test/stress/sqlsmith/api_fuzz.sql: procq_api_fuzz(n, seed), used by
-- test/stress/30_sqlsmith.sh after sqlsmith, whose queries pick procq's
-- functions only rarely among the thousands of the catalog.  It calls a
-- random function of procq's API ncalls times, with arguments drawn from pools
-- of edge values (NULL, 0, negative, extreme integers, existing and missing
-- job ids, empty, long, quoted and non-ASCII strings, JSON of every shape,
-- arrays with NULL elements and duplicates, infinite timestamps), each call
-- in its own subtransaction, committing every 50 calls.  Errors are
-- expected; an internal one (SQLSTATE class XX) is a bug: the call is
-- recorded in fuzz_internal_errors.  fuzz_outcomes counts the outcomes per
-- function and SQLSTATE.
CREATE TABLE public.fuzz_outcomes (func text, code text, calls bigint, PRIMARY KEY (func, code));
CREATE TABLE public.fuzz_internal_errors (statement text, code text, message text);
GRANT ALL ON public.fuzz_outcomes, public.fuzz_internal_errors TO PUBLIC;

-- (A procedure with a SET clause could not COMMIT: it sets search_path for
-- the session instead.)
CREATE PROCEDURE public.procq_api_fuzz(ncalls integer, seed float8)
LANGUAGE plpgsql
AS $fuzz$
DECLARE
    ints bigint[] := ARRAY[NULL, 0, -1, 1, 2, 3, 7, 50, 100, 1000, 2147483647, -2147483648,
                           9223372036854775807, -9223372036854775808];
    texts text[] := ARRAY[NULL, '', ' ', 'noop', 'ext', 'fail', 'default', 'other', 'lock0', 'lock1',
                          'x''; DROP TABLE procq.jobs; --', '%s%n%x', repeat('q', 300),
                          repeat('é', 200), 'ünïcødé 🙂', E'tab\there', '$1', 'a,b'];
    jsons jsonb[] := ARRAY[NULL, '{}', '[]', 'null', '1', '"s"', 'true', '{"a": [1, {"b": null}]}',
                           '[{"key": "a", "task": "noop"}]',
                           '[{"key": "a"}]', '[{"task": "noop"}]', '[1, 2]', '[null]',
                           '[{"key": "a", "task": "noop", "depends_on": ["a"]}]',
                           '[{"key": "a", "task": "noop", "depends_on": ["b"]}, {"key": "b", "task": "noop"}]',
                           '[{"key": "a", "task": "noop"}, {"key": "a", "task": "noop"}]',
                           '[{"key": "a", "task": "noop", "depends_on": [1, 2, 3]}, {"key": "b", "task": "ext", "depends_on": ["a"], "lock": "lock0"}]',
                           '[{"key": "a", "task": "noop", "max_attempts": 0}]',
                           '[{"key": "a", "task": "noop", "max_attempts": 2147483648}]',
                           '[{"key": "a", "task": "noop", "priority": "high"}]',
                           '[{"key": "a", "task": "noop", "scheduled_at": "infinity"}]',
                           '[{"key": "a", "task": "noop", "scheduled_at": "yesterday"}]',
                           '[{"key": "a", "task": "noop", "depends_on": [-1]}]',
                           '[{"key": "a", "task": "noop", "depends_on": [9223372036854775807]}]',
                           '[{"key": "a", "task": "noop", "depends_on": [1.5]}]',
                           '[{"key": "a", "task": "noop", "args": [1]}]',
                           '[{"key": "a", "task": "noop", "bogus": 1}]',
                           '[{"key": "", "task": ""}]',
                           '{"key": "a", "task": "noop"}'];
    statuses text[] := ARRAY[NULL, 'todo', 'doing', 'succeeded', 'failed', 'cancelled',
                             'succeeded', 'failed', 'succeeded'];
    stamps timestamptz[] := ARRAY[NULL, 'infinity', '-infinity', now(), now() + interval '1 hour',
                                  now() - interval '1 hour', '2000-01-01', '294276-12-31 23:59:59+00'];
    intervals interval[] := ARRAY[NULL, '0', '-1 second', '1 second', '1 day', '1000 years',
                                  '-178000000 years', '1 microsecond'];
    commands text[] := ARRAY[NULL, '', 'SELECT $2', 'SELECT $1', 'SELECT $3', 'not sql at all',
                             'SELECT 1; SELECT 2', '/bin/true', 'SELECT pg_catalog.int4div(1, 0)'];
    kinds text[] := ARRAY[NULL, 'sql', 'shell', 'SQL', 'python'];
    fns text[] := ARRAY['defer', 'defer_jobs', 'defer_workflow', 'fetch_job', 'fetch_jobs',
                        'finish_job', 'finish_jobs', 'retry_job', 'cancel_job', 'heartbeat',
                        'recover_stalled', 'parent_results', 'purge', 'register_handler',
                        'unregister_handler', 'worker_status'];
    maxid bigint;
    fn text;
    call text;
    state text;
    msg text;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);
    PERFORM setseed(seed);
    FOR i IN 1 .. ncalls LOOP
        maxid := public.fuzz_maxid();
        fn := fns[1 + floor(random() * cardinality(fns))::int];
        call := CASE fn
            WHEN 'defer' THEN format('procq.defer(%L, %L, %L, %L, %L, %L, %L, %L, %L)',
                texts[1 + floor(random() * cardinality(texts))::int],
                jsons[1 + floor(random() * cardinality(jsons))::int],
                texts[1 + floor(random() * cardinality(texts))::int],
                ints[1 + floor(random() * 8)::int],
                stamps[1 + floor(random() * cardinality(stamps))::int],
                public.fuzz_ids(maxid), ints[1 + floor(random() * cardinality(ints))::int],
                texts[1 + floor(random() * cardinality(texts))::int],
                CASE WHEN random() < 0.3 THEN texts[1 + floor(random() * cardinality(texts))::int] END)
                || '::bigint'
            WHEN 'defer_jobs' THEN format('(SELECT count(*) FROM procq.defer_jobs(%L, %L, %L, %L, %L, %L, %L, %L))',
                texts[1 + floor(random() * cardinality(texts))::int],
                CASE floor(random() * 4)::int WHEN 0 THEN NULL WHEN 1 THEN '{}'::jsonb[]
                    WHEN 2 THEN ARRAY['{}', NULL]::jsonb[]
                    ELSE ARRAY(SELECT jsons[1 + floor(random() * cardinality(jsons))::int]
                               FROM generate_series(1, 1 + floor(random() * 20)::int)) END,
                texts[1 + floor(random() * cardinality(texts))::int],
                ints[1 + floor(random() * 8)::int],
                stamps[1 + floor(random() * cardinality(stamps))::int],
                public.fuzz_ids(maxid), ints[1 + floor(random() * cardinality(ints))::int],
                texts[1 + floor(random() * cardinality(texts))::int])
            WHEN 'defer_workflow' THEN format('(SELECT count(*) FROM procq.defer_workflow(%L))',
                jsons[1 + floor(random() * cardinality(jsons))::int])
            WHEN 'fetch_job' THEN format('(SELECT count(*) FROM procq.fetch_job(%L, %L, %L))',
                public.fuzz_texts(texts), texts[1 + floor(random() * cardinality(texts))::int],
                public.fuzz_texts(texts))
            WHEN 'fetch_jobs' THEN format('(SELECT count(*) FROM procq.fetch_jobs(%L, %L, %L, %L))',
                ints[1 + floor(random() * 10)::int], public.fuzz_texts(texts),
                texts[1 + floor(random() * cardinality(texts))::int], public.fuzz_texts(texts))
            WHEN 'finish_job' THEN format('procq.finish_job(%L, %L, %L, %L)::text',
                CASE WHEN random() < 0.5 THEN public.fuzz_doing_id() ELSE public.fuzz_id(maxid) END, statuses[1 + floor(random() * cardinality(statuses))::int],
                jsons[1 + floor(random() * cardinality(jsons))::int],
                texts[1 + floor(random() * cardinality(texts))::int])
            WHEN 'finish_jobs' THEN format('(SELECT count(*) FROM procq.finish_jobs(%L, %L, %L, %L))',
                CASE WHEN random() < 0.5 THEN ARRAY[public.fuzz_doing_id(), public.fuzz_doing_id()]
                     ELSE public.fuzz_ids(maxid) END, statuses[1 + floor(random() * cardinality(statuses))::int],
                CASE WHEN random() < 0.5 THEN NULL ELSE ARRAY(SELECT jsons[1 + floor(random() * cardinality(jsons))::int]
                    FROM generate_series(1, floor(random() * 4)::int)) END,
                CASE WHEN random() < 0.5 THEN NULL ELSE ARRAY(SELECT texts[1 + floor(random() * cardinality(texts))::int]
                    FROM generate_series(1, floor(random() * 4)::int)) END)
            WHEN 'retry_job' THEN format('procq.retry_job(%L, %L)::text',
                public.fuzz_id(maxid), stamps[1 + floor(random() * cardinality(stamps))::int])
            WHEN 'cancel_job' THEN format('procq.cancel_job(%L, %L)::text',
                public.fuzz_id(maxid), (ARRAY[NULL, false, true])[1 + floor(random() * 3)::int])
            WHEN 'heartbeat' THEN format('procq.heartbeat(%L)::text',
                CASE WHEN random() < 0.5 THEN public.fuzz_doing_id() ELSE public.fuzz_id(maxid) END)
            WHEN 'recover_stalled' THEN 'procq.recover_stalled()::text'
            WHEN 'parent_results' THEN format('procq.parent_results(%L)::text', public.fuzz_id(maxid))
            WHEN 'purge' THEN format('procq.purge(%L)::text',
                intervals[1 + floor(random() * cardinality(intervals))::int])
            WHEN 'register_handler' THEN format('procq.register_handler(%L, %L, %L, %L)::text',
                texts[1 + floor(random() * cardinality(texts))::int],
                kinds[1 + floor(random() * cardinality(kinds))::int],
                commands[1 + floor(random() * cardinality(commands))::int],
                intervals[1 + floor(random() * cardinality(intervals))::int])
            WHEN 'unregister_handler' THEN format('procq.unregister_handler(%L)::text',
                texts[1 + floor(random() * cardinality(texts))::int])
            ELSE '(SELECT count(*) FROM procq.worker_status)::text'
        END;
        BEGIN
            EXECUTE 'SELECT ' || call;
            state := 'ok';
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            IF state LIKE 'XX%' THEN
                INSERT INTO public.fuzz_internal_errors VALUES (call, state, msg);
            END IF;
        END;
        INSERT INTO public.fuzz_outcomes AS o VALUES (fn, state, 1)
            ON CONFLICT (func, code) DO UPDATE SET calls = o.calls + 1;
        IF i % 50 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END
$fuzz$;

-- fuzz_maxid(): the highest job id (the role may not read procq.jobs).
CREATE FUNCTION public.fuzz_maxid() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(max(id), 1) FROM procq.jobs
$$;

-- fuzz_doing_id(): a doing job's id (or NULL), for finish and heartbeat.
CREATE FUNCTION public.fuzz_doing_id() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT id FROM procq.jobs WHERE status = 'doing' ORDER BY random() LIMIT 1
$$;

-- fuzz_id(maxid): a job id, existing most of the time.
CREATE FUNCTION public.fuzz_id(maxid bigint) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN random() < 0.1 THEN NULL
                WHEN random() < 0.1 THEN (ARRAY[0, -1, 9223372036854775807, maxid + 1])[1 + floor(random() * 4)::int]
                ELSE 1 + floor(random() * maxid)::bigint END
$$;

-- fuzz_ids(maxid): an array of job ids: NULL, empty, with NULL elements or
-- duplicates, or long.
CREATE FUNCTION public.fuzz_ids(maxid bigint) RETURNS bigint[]
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE floor(random() * 6)::int
        WHEN 0 THEN NULL
        WHEN 1 THEN '{}'::bigint[]
        WHEN 2 THEN ARRAY[public.fuzz_id(maxid), NULL]
        WHEN 3 THEN ARRAY[public.fuzz_id(maxid), public.fuzz_id(maxid), public.fuzz_id(maxid)]
        WHEN 4 THEN ARRAY(SELECT 1 + floor(random() * maxid)::bigint FROM generate_series(1, 2000))
        ELSE ARRAY[public.fuzz_id(maxid)] END
$$;

-- fuzz_texts(pool): NULL, empty, or a few elements of the pool.
CREATE FUNCTION public.fuzz_texts(pool text[]) RETURNS text[]
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE floor(random() * 4)::int
        WHEN 0 THEN NULL
        WHEN 1 THEN '{}'::text[]
        ELSE ARRAY(SELECT pool[1 + floor(random() * cardinality(pool))::int]
                   FROM generate_series(1, 1 + floor(random() * 3)::int)) END
$$;
GRANT EXECUTE ON FUNCTION public.fuzz_maxid(), public.fuzz_doing_id(), public.fuzz_id(bigint), public.fuzz_ids(bigint), public.fuzz_texts(text[]) TO PUBLIC;
GRANT EXECUTE ON PROCEDURE public.procq_api_fuzz(integer, float8) TO PUBLIC;
