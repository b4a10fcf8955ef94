-- hostile_input.sql (issue 8, bounds): every SQL function of procq with
-- wrong JSON shapes (arrays, strings, numbers, null where objects are
-- expected, nested garbage in defer_workflow steps and defer_jobs), odd
-- arrays (empty, two-dimensional, other lower bounds, duplicates),
-- extreme numbers and ids, and names with quotes, semicolons, format
-- directives and unicode.  Each gets a clear error or a correct result,
-- and an error changes nothing (each line shows the state after a call
-- that changed it; every call is rolled back afterwards, so all see the
-- same jobs).  NULL in each argument is hostile_nulls.sql.
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
            -- a timestamp (heartbeat's) differs from run to run
            outcome := 'ok: ' || coalesce(regexp_replace(r, '^\w{3} \w{3} \d\d \d\d:\d\d:\d\d[.0-9]* \d{4} \w+$',
                                                         '<a timestamp>'), 'NULL');
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

CREATE TEMP TABLE calls (n serial, q text);
INSERT INTO calls (q) VALUES
-- defer: args of any JSON shape are the job's args, as given
($$SELECT procq.defer('t', args => '[1, 2]')::text$$),
($$SELECT procq.defer('t', args => '"a string"')::text$$),
($$SELECT procq.defer('t', args => '42')::text$$),
($$SELECT procq.defer('t', args => 'null')::text$$),
($$SELECT procq.defer('t', args => '{"a": {"b": [[[{"c": null}]], "\u0000"]}}')::text$$),
-- names with quotes, semicolons, format directives, backslashes, unicode
($$SELECT procq.defer($q$'; DROP TABLE procq.jobs; --$q$)::text$$),
($$SELECT procq.defer('t', queue => 'q"uote''s; NOTIFY x')::text$$),
($$SELECT procq.defer('%s %n %x %%', lock => '%s%s%s%n', queueing_lock => '%n')::text$$),
($$SELECT procq.defer(E'tab\tnew\nline\\', queue => E'\\')::text$$),
($$SELECT procq.defer('😀 ünïcödé ✓', queue => 'キュー', lock => 'ß', queueing_lock => '💥')::text$$),
($$SELECT procq.defer(' ', queue => ' ')::text$$),
($$SELECT count(*)::text FROM procq.fetch_job(queues => ARRAY['q"uote''s; NOTIFY x'])$$),
($$SELECT count(*)::text FROM procq.fetch_job(tasks => ARRAY[$q$'; DROP TABLE procq.jobs; --$q$])$$),
-- depends_on: ids that cannot exist, odd arrays
($$SELECT procq.defer('t', depends_on => '{0}')::text$$),
($$SELECT procq.defer('t', depends_on => '{-1}')::text$$),
($$SELECT procq.defer('t', depends_on => '{9223372036854775807}')::text$$),
($$SELECT procq.defer('t', depends_on => '{}')::text$$),
($$SELECT procq.defer('t', depends_on => '{3, 3, 3}')::text$$),
($$SELECT procq.defer('t', depends_on => '{{3, 1}, {1, 3}}')::text$$),
($$SELECT procq.defer('t', depends_on => '[0:1]={3, 1}')::text$$),
($$SELECT procq.defer('t', depends_on => '{3, NULL}')::text$$),
-- extreme numbers and times
($$SELECT procq.defer('t', priority => -2147483648, max_attempts => 2147483647)::text$$),
($$SELECT procq.defer('t', priority => 2147483647)::text$$),
($$SELECT procq.defer('t', max_attempts => -2147483648)::text$$),
($$SELECT procq.defer('t', scheduled_at => 'infinity')::text$$),
($$SELECT procq.defer('t', scheduled_at => '-infinity')::text$$),
-- defer_jobs
($$SELECT count(*)::text FROM procq.defer_jobs('t', '{}')$$),
($$SELECT count(*)::text FROM procq.defer_jobs('t', ARRAY['[1]', '"s"', 'null', '7']::jsonb[])$$),
($$SELECT count(*)::text FROM procq.defer_jobs('t', '{{"{}", "[]"}, {"1", "2"}}')$$),
($$SELECT count(*)::text FROM procq.defer_jobs('t', '[5:6]={"{}", "{}"}')$$),
($$SELECT count(*)::text FROM procq.defer_jobs('t', ARRAY['{}', NULL]::jsonb[])$$),
($$SELECT count(*)::text FROM procq.defer_jobs('t', '{"{}"}', depends_on => '{1, 0}')$$),
($$SELECT count(*)::text FROM procq.defer_jobs('t;''"', '{"{}"}', queue => '😀', lock => '; --')$$),
-- defer_workflow: steps that are not an array of objects
($$SELECT count(*)::text FROM procq.defer_workflow('{}')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('"steps"')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('17')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('null')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[null]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[[]]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[[{"key": "a", "task": "t"}]]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[1]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('["a"]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{}]')$$),
-- ... steps with fields of the wrong shape
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": null, "task": "t"}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": ["a"], "task": "t"}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": {"k": 1}, "task": "t"}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": null}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": {"name": "t"}}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": 7}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "queue": null}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "queue": ["q"]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "lock": 1}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "queueing_lock": false}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "lock": null, "queueing_lock": null, "scheduled_at": null, "args": null, "depends_on": null}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "priority": null}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "priority": "1"}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "priority": 1e30}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "priority": -2147483649}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "priority": -2147483648}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "max_attempts": 0}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "max_attempts": [3]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "max_attempts": 2147483648}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "scheduled_at": 1700000000}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "scheduled_at": ""}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "scheduled_at": "infinity"}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "scheduled_at": {"at": "now"}}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "args": "s"}, {"key": "b", "task": "t", "args": [[[[[]]]]]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "depends_on": {"a": 1}}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "depends_on": "a"}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t"}, {"key": "b", "task": "t", "depends_on": [["a"]]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t"}, {"key": "b", "task": "t", "depends_on": [null]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t"}, {"key": "b", "task": "t", "depends_on": [true]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "depends_on": [3.5]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "depends_on": [0]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "depends_on": [-3]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "depends_on": [1e30]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "depends_on": [3, "3"]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "3", "task": "t"}, {"key": "b", "task": "t", "depends_on": [3, "3", "3", 3]}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "task": "t", "tåsk": "x"}]')$$),
($$SELECT count(*)::text FROM procq.defer_workflow('[{"key": "a", "key": "b", "task": "t"}]')$$),
($$SELECT string_agg(key || '=' || job_id, ',') FROM procq.defer_workflow('[{"key": "a\"; DROP TABLE procq.jobs; --", "task": "%s%n"}, {"key": "😀", "task": "t", "depends_on": ["a\"; DROP TABLE procq.jobs; --"]}]')$$),
-- fetch_job and fetch_jobs
($$SELECT count(*)::text FROM procq.fetch_job(queues => '{}')$$),
($$SELECT count(*)::text FROM procq.fetch_job(tasks => '{}')$$),
($$SELECT count(*)::text FROM procq.fetch_job(queues => '{{default}}')$$),
($$SELECT count(*)::text FROM procq.fetch_job(worker => '')$$),
($$SELECT count(*)::text FROM procq.fetch_job(worker => $q$w'; DROP TABLE procq.jobs; --$q$)$$),
($$SELECT count(*)::text FROM procq.fetch_jobs(0)$$),
($$SELECT count(*)::text FROM procq.fetch_jobs(-2147483648)$$),
($$SELECT count(*)::text FROM procq.fetch_jobs(2147483647)$$),
($$SELECT count(*)::text FROM procq.fetch_jobs(5, queues => '{}', tasks => '{t}')$$),
($$SELECT count(*)::text FROM procq.fetch_jobs(5, queues => '{default, default}', tasks => '{t, t}')$$),
-- finish_job
($$SELECT procq.finish_job(0, 'succeeded')::text$$),
($$SELECT procq.finish_job(-1, 'succeeded')::text$$),
($$SELECT procq.finish_job(9223372036854775807, 'succeeded')::text$$),
($$SELECT procq.finish_job(1, 'todo')::text$$),
($$SELECT procq.finish_job(1, 'failed', result => '[]')::text$$),
($$SELECT procq.finish_job(1, 'succeeded', result => '"a string"')::text$$),
($$SELECT procq.finish_job(1, 'succeeded', result => 'null')::text$$),
($$SELECT procq.finish_job(1, 'failed', error => $q$'; DROP TABLE procq.jobs; -- %s %n 😀$q$)::text$$),
-- finish_jobs
($$SELECT count(*)::text FROM procq.finish_jobs('{}', 'succeeded')$$),
($$SELECT count(*)::text FROM procq.finish_jobs('{1, 1}', 'succeeded')$$),
($$SELECT count(*)::text FROM procq.finish_jobs('{1}', 'succeeded', results => '{"{}", "{}"}')$$),
($$SELECT count(*)::text FROM procq.finish_jobs('{1}', 'failed', errors => '{}')$$),
($$SELECT count(*)::text FROM procq.finish_jobs('{1}', 'succeeded', results => '{NULL}')$$),
($$SELECT count(*)::text FROM procq.finish_jobs('{1}', 'failed', results => '{"[]"}')$$),
($$SELECT count(*)::text FROM procq.finish_jobs('{{1}}', 'succeeded', results => '{"{}"}')$$),
($$SELECT count(*)::text FROM procq.finish_jobs('[3:3]={1}', 'succeeded', results => '[7:7]={"[1]"}')$$),
($$SELECT count(*)::text FROM procq.finish_jobs('{1, NULL}', 'succeeded')$$),
($$SELECT count(*)::text FROM procq.finish_jobs('{0}', 'succeeded')$$),
($$SELECT count(*)::text FROM procq.finish_jobs('{1}', 'doing')$$),
-- retry_job, cancel_job, heartbeat, parent_results
($$SELECT procq.retry_job(0)::text$$),
($$SELECT procq.retry_job(-1)::text$$),
($$SELECT procq.retry_job(1)::text$$),
($$SELECT procq.retry_job(4, scheduled_at => 'infinity')::text$$),
($$SELECT procq.retry_job(4, scheduled_at => '-infinity')::text$$),
($$SELECT procq.cancel_job(0)::text$$),
($$SELECT procq.cancel_job(-9223372036854775808, abort => true)::text$$),
($$SELECT procq.cancel_job(3)::text$$),
($$SELECT procq.heartbeat(0)::text$$),
($$SELECT procq.heartbeat(3)::text$$),
($$SELECT procq.parent_results(0)::text$$),
($$SELECT procq.parent_results(1)::text$$),
-- purge
($$SELECT procq.purge('-1 second')::text$$),
($$SELECT procq.purge('-1 month +40 days')::text$$),
($$SELECT procq.purge('1000 years')::text$$),
-- register_handler and unregister_handler
($$SELECT procq.register_handler('t', 'SQL', 'SELECT 1')::text$$),
($$SELECT procq.register_handler('t', '', 'SELECT 1')::text$$),
($$SELECT procq.register_handler('t', 'sql', '')::text$$),
($$SELECT procq.register_handler('t', 'sql', ';')::text$$),
($$SELECT procq.register_handler('t', 'sql', 'SELECT 1; DROP TABLE procq.jobs')::text$$),
($$SELECT procq.register_handler('t', 'sql', 'SELEC 1')::text$$),
($$SELECT procq.register_handler('t', 'sql', 'SELECT 1', timeout => '0')::text$$),
($$SELECT procq.register_handler('t', 'sql', 'SELECT 1', timeout => '-1 second')::text$$),
($$SELECT procq.register_handler('t', 'sql', 'SELECT 1', timeout => '1 day')::text$$),
($$SELECT procq.register_handler('t', 'sql', 'SELECT 1', timeout => '1 month')::text$$),
($$SELECT procq.register_handler('t', 'shell', '/bin/echo "unbalanced')::text$$),
($$SELECT procq.register_handler('t', 'shell', '')::text$$),
($$SELECT procq.register_handler($q$'; DROP TABLE procq.jobs; -- 😀$q$, 'sql', 'SELECT $1')::text$$),
($$SELECT procq.unregister_handler('no such task; --')::text$$),
($$SELECT procq.unregister_handler('')::text$$);

\x on
SELECT n, q AS call, pg_temp.attempt(q) AS outcome FROM calls ORDER BY n;
\x off

-- No call ended in an internal error.
SELECT count(*) AS internal_errors FROM calls WHERE pg_temp.attempt(q) ~ '^(XX|58)';

-- Nothing changed.
SELECT pg_temp.state() = :'initial_state' AS nothing_changed;
