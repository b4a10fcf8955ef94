-- hostile_nulls.sql (issue 8, bounds): every SQL function of procq, called
-- with NULL in each of its arguments (and sensible values in the others),
-- gives a clear error (22004 naming the argument, or the error that
-- argument's absence means) or a correct result; an error changes
-- nothing.  The calls are generated from pg_proc, so a function or an
-- argument added later is covered without editing this file (its line
-- then appears in the expected output, to be reviewed).
--
-- Each call runs in a subtransaction that is rolled back afterwards, so
-- every call sees the same jobs; the line shows the outcome (ok: the
-- result as text, or the SQLSTATE and message) and, when the call
-- changed the jobs, their state after it.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

-- Jobs: 1 't' doing (attempt 1 of 2), 2 't' todo waiting for 1, 3
-- succeeded, 4 failed, 5 't' ready, 6 cancelled (parent 4 failed); a
-- handler for task 't'.
SELECT procq.defer('t', max_attempts => 2) AS id;
SELECT procq.defer('t', depends_on => '{1}') AS id;
SELECT procq.defer('done') AS id;
SELECT procq.defer('broken') AS id;
SELECT id FROM procq.fetch_job(tasks => '{done}');
SELECT procq.finish_job(3, 'succeeded', '{"r": 3}');
SELECT id FROM procq.fetch_job(tasks => '{broken}');
SELECT procq.finish_job(4, 'failed', error => 'boom');
SELECT id FROM procq.fetch_job(tasks => '{t}');
SELECT procq.defer('t') AS id;
SELECT procq.defer('t', depends_on => '{4}') AS id;
SELECT procq.register_handler('t', 'sql', 'SELECT $1');

-- What a call may change, in one line; "rows" is a digest of the rest.
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
    SELECT format('todo=%s doing=%s succeeded=%s failed=%s cancelled=%s deps=%s handlers=%s',
        count(*) FILTER (WHERE status = 'todo'), count(*) FILTER (WHERE status = 'doing'),
        count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'),
        count(*) FILTER (WHERE status = 'cancelled'),
        (SELECT count(*) FROM procq.job_dependencies), (SELECT count(*) FROM procq.handlers))
        || ' rows=' || md5(coalesce(string_agg(j::text, ',' ORDER BY id), ''))
    FROM procq.jobs j
$$;

-- Runs query q (one value) in a subtransaction that is then rolled back;
-- returns its outcome, and the state after it when the call changed it.
CREATE FUNCTION pg_temp.attempt(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    before text := pg_temp.state();
    after text;
    outcome text;
    r text;
    st text;
    msg text;
BEGIN
    BEGIN
        BEGIN
            EXECUTE q INTO r;
            -- timestamps (heartbeat's, a job row's) and a fetcher's pid
            -- differ from run to run
            outcome := 'ok: ' || coalesce(regexp_replace(regexp_replace(r,
                           '"?\w{3} \w{3} \d\d \d\d:\d\d:\d\d[.0-9]* \d{4} \w+"?', '<a timestamp>', 'g'),
                           'backend \d+', 'backend <pid>', 'g'), 'NULL');
            after := pg_temp.state();
            RAISE EXCEPTION USING ERRCODE = 'PQ999';
        EXCEPTION WHEN SQLSTATE 'PQ999' THEN
            NULL;
        END;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        outcome := st || ': ' || msg;
        after := pg_temp.state();
    END;
    IF after IS DISTINCT FROM before THEN
        outcome := outcome || ' => ' || regexp_replace(after, ' rows=.*', '')
            || CASE WHEN regexp_replace(after, '.* rows=', '') <> regexp_replace(before, '.* rows=', '')
                     AND regexp_replace(after, ' rows=.*', '') = regexp_replace(before, ' rows=.*', '')
                    THEN ' (rows changed)' ELSE '' END;
    END IF;
    IF pg_temp.state() IS DISTINCT FROM before THEN
        outcome := outcome || ' NOT ROLLED BACK';
    END IF;
    RETURN outcome;
END
$$;

SELECT pg_temp.state() AS initial_state \gset
SELECT regexp_replace(:'initial_state', ' rows=.*', '') AS jobs;

-- A sensible value for each argument, by name (then by type): the job
-- ids name a job the function applies to.
CREATE TEMP TABLE arg_values (fn text, arg text, val text);
INSERT INTO arg_values VALUES
    (NULL, 'task', $$'t'$$), (NULL, 'args', $$'{}'$$), (NULL, 'queue', $$'default'$$),
    (NULL, 'priority', '0'), (NULL, 'scheduled_at', 'now()'), (NULL, 'depends_on', $$'{3}'$$),
    (NULL, 'max_attempts', '1'), (NULL, 'lock', $$'L'$$), (NULL, 'queueing_lock', $$'QL'$$),
    (NULL, 'steps', $$'[{"key": "a", "task": "t"}]'$$), (NULL, 'queues', $$'{default}'$$),
    (NULL, 'worker', $$'w'$$), (NULL, 'tasks', $$'{t}'$$), (NULL, 'n', '2'),
    (NULL, 'status', $$'succeeded'$$), (NULL, 'result', $$'{"ok": true}'$$),
    (NULL, 'error', $$'oops'$$), (NULL, 'abort', 'false'), (NULL, 'older_than', $$'1 day'$$),
    (NULL, 'kind', $$'sql'$$), (NULL, 'command', $$'SELECT 1'$$), (NULL, 'timeout', $$'1 min'$$),
    (NULL, 'job_ids', $$'{1}'$$), (NULL, 'results', $$'{"{}"}'$$), (NULL, 'errors', $$'{e}'$$),
    (NULL, 'attempt', '1'), (NULL, 'attempts', $$'{1}'$$), (NULL, 'job_id', '1'),
    (NULL, 'run_after', $$'success'$$), (NULL, 'tick', $$'nightly:1'$$),
    (NULL, 'workflow_id', '(SELECT workflow_id FROM procq.jobs WHERE id = 3)'),
    ('defer_jobs', 'args', $$'{"{}", "[1]"}'$$),
    (NULL, 'by_key', 'true'),
    ('retry_job', 'job_id', '4'), ('cancel_job', 'job_id', '2'), ('parent_results', 'job_id', '2'),
    ('add_dependencies', 'job_id', '2'),
    ('parents', 'job_id', '2'), ('cancel_workflow', 'workflow_id', '1'),
    ('get_job', 'job_id', '1'), ('wait_job', 'job_id', '3'),
    ('jobs_row_check', 'task', $$'t'$$), ('jobs_row_check', 'status', $$'todo'$$),
    ('jobs_row_check', 'attempts', '0'), ('jobs_row_check', 'pending_parents', '0'),
    ('jobs_row_check', 'lock_blocked', 'false'), ('jobs_row_check', 'delayed', 'false'),
    ('jobs_row_check', 'started_at', 'NULL'), ('jobs_row_check', 'lease_expires_at', 'NULL'),
    ('jobs_row_check', 'finished_at', 'NULL'), ('jobs_row_check', 'result', 'NULL'),
    ('jobs_row_check', 'scheduled_at', 'NULL'), ('jobs_row_check', 'cancelled_by', 'NULL'),
    ('jobs_row_check', 'failed_parents', '0');

-- The functions a user calls (not the trigger functions, which PostgreSQL
-- refuses to call outside a trigger), with their arguments.
CREATE TEMP VIEW api_args AS
    SELECT p.proname::text AS fn, p.oid, p.proretset,
           p.prorettype = 'void'::regtype AS void, a.n, a.name::text, a.type
    FROM pg_proc p
    CROSS JOIN LATERAL unnest(p.proargnames[1:p.pronargs], p.proargtypes::oid[])
        WITH ORDINALITY AS a(name, type, n)
    WHERE p.pronamespace = 'procq'::regnamespace AND p.prorettype <> 'trigger'::regtype;

-- One call per function and argument: NULL there, the sensible values
-- elsewhere; null_arg 0 is the call with no NULL.
CREATE TEMP VIEW null_calls AS
    WITH positions AS (
        SELECT fn, oid, proretset, void, n, name FROM api_args
        UNION ALL
        SELECT DISTINCT fn, oid, proretset, void, 0, NULL FROM api_args)
    SELECT f.fn, f.n AS null_arg, f.name AS null_name,
           CASE WHEN f.proretset THEN 'SELECT count(*)::text FROM ' ELSE 'SELECT ' END
           || 'procq.' || quote_ident(f.fn) || '('
           || string_agg(quote_ident(o.name) || ' => '
                         || CASE WHEN o.n = f.n THEN 'NULL'
                                 ELSE coalesce(v1.val, v2.val, 'NULL') END
                         || '::' || format_type(o.type, NULL), ', ' ORDER BY o.n)
           || ')' || CASE WHEN f.proretset THEN '' ELSE '::text' END AS q
    FROM positions f
    JOIN api_args o ON o.oid = f.oid
    LEFT JOIN arg_values v1 ON v1.fn = o.fn AND v1.arg = o.name
    LEFT JOIN arg_values v2 ON v2.fn IS NULL AND v2.arg = o.name
    GROUP BY f.fn, f.oid, f.n, f.name, f.proretset, f.void;

-- The functions without arguments, called once.
SELECT p.proname AS fn, pg_temp.attempt(
           CASE WHEN p.proretset THEN 'SELECT count(*)::text FROM ' ELSE 'SELECT ' END
           || 'procq.' || quote_ident(p.proname) || '()') AS outcome
FROM pg_proc p
WHERE p.pronamespace = 'procq'::regnamespace AND p.pronargs = 0
  AND p.prorettype <> 'trigger'::regtype
ORDER BY 1;

-- Every function with the sensible values: they work (so that a failure
-- below comes from the NULL).
SELECT fn, pg_temp.attempt(q) AS outcome
FROM null_calls WHERE null_arg = 0 AND fn <> 'jobs_row_check'
ORDER BY fn;

-- NULL in each argument.
\x on
SELECT fn || '(' || null_name || ' => NULL)' AS call, pg_temp.attempt(q) AS outcome
FROM null_calls
WHERE null_arg > 0 AND fn <> 'jobs_row_check'
ORDER BY fn, null_arg;
\x off

-- The row check of procq.jobs (called by its CHECK constraint, not by
-- users) passes NULL, as a CHECK does.
SELECT pg_temp.attempt(q) AS row_check_all_null
FROM (SELECT 'SELECT procq.jobs_row_check(' || string_agg('NULL', ', ') || ')::text' AS q
      FROM api_args WHERE fn = 'jobs_row_check') c;

-- Nothing changed.
SELECT pg_temp.state() = :'initial_state' AS nothing_changed;
