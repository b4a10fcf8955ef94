-- api.sql: the SQL API contract of procq.
--
-- Clients call the API with named arguments and rely on its defaults, its
-- result types and its SQLSTATEs (to tell "retry later" from "bug in my
-- call"); DBAs rely on the functions being safe to expose: each pins its
-- search_path, and none is executable by PUBLIC, so only roles granted
-- EXECUTE can use them.  This file checks all of that, plus the documented
-- privilege model: a role with USAGE on the schema and EXECUTE on the API
-- works without any privilege on the tables.
--
-- Run by scripts/run-tests.sh in a fresh database where pgtap and procq
-- are installed; everything happens in one transaction that is rolled back.

BEGIN;
SELECT plan(153);

------------------------------------------------------------------------------
-- Signatures: argument types, names and defaults, result types
------------------------------------------------------------------------------

SELECT functions_are('procq', ARRAY[
    'defer', 'defer_workflow', 'fetch_job', 'finish_job', 'retry_job',
    'cancel_job', 'heartbeat', 'recover_stalled', 'parent_results',
    'register_handler', 'unregister_handler', 'worker_status', 'purge',
    'jobs_status_changed', 'jobs_status_normalize', 'jobs_deleted', 'dependency_deleted',
    'fetch_jobs', 'finish_jobs', 'defer_jobs', 'jobs_row_check',
    'get_job', 'get_jobs', 'wait_job', 'handlers_check', 'jobs_workflow_default',
    'add_dependencies', 'cancel_workflow', 'workflow_dot', 'parents',
    'release_job',
    'job_history', 'job_events_record', 'job_events_forget', 'defer_workflow_once',
    'metrics', 'jobs_final_inserted', 'jobs_truncated'],
    'schema procq has exactly the API, the trigger functions and the row check of procq.jobs');

SELECT has_function('procq', 'defer',
    ARRAY['text', 'jsonb', 'text', 'integer', 'timestamp with time zone', 'bigint[]', 'integer', 'text', 'text',
           'text', 'bigint'],
    'procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text, text, bigint) exists');
SELECT function_returns('procq', 'defer',
    ARRAY['text', 'jsonb', 'text', 'integer', 'timestamp with time zone', 'bigint[]', 'integer', 'text', 'text',
           'text', 'bigint'],
    'bigint', 'procq.defer returns bigint (the job id)');
SELECT has_function('procq', 'defer_workflow', ARRAY['jsonb', 'bigint'],
    'procq.defer_workflow(jsonb, bigint) exists');
SELECT function_returns('procq', 'defer_workflow', ARRAY['jsonb', 'bigint'], 'setof record',
    'procq.defer_workflow returns a set of rows');
SELECT hasnt_function('procq', 'defer_workflow', ARRAY['jsonb'],
    'the 1.0 declaration procq.defer_workflow(jsonb) is gone');
SELECT has_function('procq', 'fetch_job', ARRAY['text[]', 'text', 'text[]'],
    'procq.fetch_job(text[], text, text[]) exists');
SELECT function_returns('procq', 'fetch_job', ARRAY['text[]', 'text', 'text[]'], 'setof procq.jobs',
    'procq.fetch_job returns SETOF procq.jobs');
SELECT hasnt_function('procq', 'fetch_job', ARRAY['text[]', 'text'],
    'the 1.0 declaration procq.fetch_job(text[], text) is gone (fetch_job() would be ambiguous)');
SELECT has_function('procq', 'job_history', ARRAY['bigint'],
    'procq.job_history(bigint) exists');
SELECT function_returns('procq', 'job_history', ARRAY['bigint'], 'setof procq.job_events',
    'procq.job_history returns SETOF procq.job_events');
SELECT has_function('procq', 'fetch_jobs', ARRAY['integer', 'text[]', 'text', 'text[]'],
    'procq.fetch_jobs(integer, text[], text, text[]) exists');
SELECT function_returns('procq', 'fetch_jobs', ARRAY['integer', 'text[]', 'text', 'text[]'],
    'setof procq.jobs', 'procq.fetch_jobs returns SETOF procq.jobs');
SELECT has_function('procq', 'finish_jobs', ARRAY['bigint[]', 'procq.job_status', 'jsonb[]', 'text[]', 'integer[]'],
    'procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[], integer[]) exists');
SELECT function_returns('procq', 'finish_jobs', ARRAY['bigint[]', 'procq.job_status', 'jsonb[]', 'text[]', 'integer[]'],
    'setof record', 'procq.finish_jobs returns a set of rows');
SELECT hasnt_function('procq', 'finish_jobs', ARRAY['bigint[]', 'procq.job_status', 'jsonb[]', 'text[]'],
    'finish_jobs without attempts is gone (calls without it would be ambiguous)');
SELECT has_function('procq', 'defer_jobs',
    ARRAY['text', 'jsonb[]', 'text', 'integer', 'timestamp with time zone', 'bigint[]', 'integer', 'text',
           'text', 'bigint'],
    'procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text, text, bigint) exists');
SELECT function_returns('procq', 'defer_jobs',
    ARRAY['text', 'jsonb[]', 'text', 'integer', 'timestamp with time zone', 'bigint[]', 'integer', 'text',
           'text', 'bigint'],
    'setof bigint', 'procq.defer_jobs returns SETOF bigint (the job ids)');
SELECT has_function('procq', 'finish_job', ARRAY['bigint', 'procq.job_status', 'jsonb', 'text', 'integer'],
    'procq.finish_job(bigint, procq.job_status, jsonb, text, integer) exists');
SELECT function_returns('procq', 'finish_job', ARRAY['bigint', 'procq.job_status', 'jsonb', 'text', 'integer'],
    'procq.job_status', 'procq.finish_job returns procq.job_status');
SELECT hasnt_function('procq', 'finish_job', ARRAY['bigint', 'procq.job_status', 'jsonb', 'text'],
    'the 1.0 declaration procq.finish_job(bigint, procq.job_status, jsonb, text) is gone');
SELECT has_function('procq', 'retry_job', ARRAY['bigint', 'timestamp with time zone'],
    'procq.retry_job(bigint, timestamptz) exists');
SELECT function_returns('procq', 'retry_job', ARRAY['bigint', 'timestamp with time zone'], 'void',
    'procq.retry_job returns void');
SELECT has_function('procq', 'cancel_job', ARRAY['bigint', 'boolean'], 'procq.cancel_job(bigint, boolean) exists');
SELECT function_returns('procq', 'cancel_job', ARRAY['bigint', 'boolean'], 'boolean',
    'procq.cancel_job returns boolean');
SELECT has_function('procq', 'heartbeat', ARRAY['bigint', 'integer'], 'procq.heartbeat(bigint, integer) exists');
SELECT function_returns('procq', 'heartbeat', ARRAY['bigint', 'integer'], 'timestamp with time zone',
    'procq.heartbeat returns timestamptz');
SELECT hasnt_function('procq', 'heartbeat', ARRAY['bigint'],
    'the 1.0 declaration procq.heartbeat(bigint) is gone');
SELECT has_function('procq', 'recover_stalled', ARRAY[]::name[], 'procq.recover_stalled() exists');
SELECT function_returns('procq', 'recover_stalled', ARRAY[]::name[], 'integer',
    'procq.recover_stalled returns integer');
SELECT has_function('procq', 'parent_results', ARRAY['bigint', 'boolean'],
    'procq.parent_results(bigint, boolean) exists');
SELECT function_returns('procq', 'parent_results', ARRAY['bigint', 'boolean'], 'jsonb',
    'procq.parent_results returns jsonb');
SELECT hasnt_function('procq', 'parent_results', ARRAY['bigint'],
    'the 1.0 declaration procq.parent_results(bigint) is gone');
SELECT has_function('procq', 'cancel_workflow', ARRAY['bigint', 'boolean'],
    'procq.cancel_workflow(bigint, boolean) exists');
SELECT function_returns('procq', 'cancel_workflow', ARRAY['bigint', 'boolean'], 'integer',
    'procq.cancel_workflow returns integer (how many jobs it cancelled)');
SELECT has_function('procq', 'workflow_dot', ARRAY['bigint'], 'procq.workflow_dot(bigint) exists');
SELECT function_returns('procq', 'workflow_dot', ARRAY['bigint'], 'text',
    'procq.workflow_dot returns text');
SELECT has_function('procq', 'parents', ARRAY['bigint'], 'procq.parents(bigint) exists');
SELECT function_returns('procq', 'parents', ARRAY['bigint'], 'setof record',
    'procq.parents returns a set of rows');
SELECT has_function('procq', 'get_job', ARRAY['bigint'], 'procq.get_job(bigint) exists');
SELECT function_returns('procq', 'get_job', ARRAY['bigint'], 'procq.jobs',
    'procq.get_job returns procq.jobs');
SELECT has_function('procq', 'get_jobs', ARRAY['bigint[]'], 'procq.get_jobs(bigint[]) exists');
SELECT function_returns('procq', 'get_jobs', ARRAY['bigint[]'], 'setof procq.jobs',
    'procq.get_jobs returns SETOF procq.jobs');
SELECT has_function('procq', 'wait_job', ARRAY['bigint', 'interval'], 'procq.wait_job(bigint, interval) exists');
SELECT function_returns('procq', 'wait_job', ARRAY['bigint', 'interval'], 'procq.jobs',
    'procq.wait_job returns procq.jobs');
SELECT has_function('procq', 'add_dependencies', ARRAY['bigint', 'bigint[]'],
    'procq.add_dependencies(bigint, bigint[]) exists');
SELECT function_returns('procq', 'add_dependencies', ARRAY['bigint', 'bigint[]'], 'integer',
    'procq.add_dependencies returns integer (the number of dependency rows added)');
SELECT has_function('procq', 'defer_workflow_once', ARRAY['text', 'jsonb', 'bigint'],
    'procq.defer_workflow_once(text, jsonb, bigint) exists');
SELECT function_returns('procq', 'defer_workflow_once', ARRAY['text', 'jsonb', 'bigint'], 'bigint',
    'procq.defer_workflow_once returns bigint (the workflow id, NULL when the tick was deferred already)');
SELECT has_function('procq', 'purge', ARRAY['interval'], 'procq.purge(interval) exists');
SELECT function_returns('procq', 'purge', ARRAY['interval'], 'bigint',
    'procq.purge returns bigint (the number of jobs deleted)');

-- Exact argument names (clients pass them by name) and defaults.
SELECT results_eq(
    $$SELECT p.proname::text COLLATE "default", p.proargnames::text[] COLLATE "default"
      FROM pg_proc p
      WHERE p.pronamespace = 'procq'::regnamespace AND p.prorettype <> 'trigger'::regtype
        AND p.proname <> 'jobs_row_check'
      ORDER BY p.proname$$,
    $$VALUES
        ('add_dependencies', ARRAY['job_id', 'depends_on']),
        ('cancel_job', ARRAY['job_id', 'abort']),
        ('cancel_workflow', ARRAY['workflow_id', 'abort']),
        ('defer', ARRAY['task', 'args', 'queue', 'priority', 'scheduled_at', 'depends_on',
                        'max_attempts', 'lock', 'queueing_lock', 'run_after', 'workflow_id']),
        ('defer_jobs', ARRAY['task', 'args', 'queue', 'priority', 'scheduled_at', 'depends_on',
                             'max_attempts', 'lock', 'run_after', 'workflow_id']),
        ('defer_workflow', ARRAY['steps', 'workflow_id', 'key', 'job_id']),
        ('defer_workflow_once', ARRAY['tick', 'steps', 'workflow_id']),
        ('fetch_job', ARRAY['queues', 'worker', 'tasks']),
        ('fetch_jobs', ARRAY['n', 'queues', 'worker', 'tasks']),
        ('finish_job', ARRAY['job_id', 'status', 'result', 'error', 'attempt']),
        ('finish_jobs', ARRAY['job_ids', 'status', 'results', 'errors', 'attempts', 'job_id', 'status']),
        ('get_job', ARRAY['job_id']),
        ('get_jobs', ARRAY['job_ids']),
        ('heartbeat', ARRAY['job_id', 'attempt']),
        ('job_history', ARRAY['job_id']),
        ('metrics', ARRAY['metric', 'queue', 'value']),
        ('parent_results', ARRAY['job_id', 'by_key']),
        ('parents', ARRAY['job_id', 'job_id', 'task', 'status', 'result', 'error', 'step_key']),
        ('purge', ARRAY['older_than']),
        ('recover_stalled', NULL),
        ('register_handler', ARRAY['task', 'kind', 'command', 'timeout']),
        ('release_job', ARRAY['job_id', 'attempt']),
        ('retry_job', ARRAY['job_id', 'scheduled_at']),
        ('unregister_handler', ARRAY['task']),
        ('wait_job', ARRAY['job_id', 'timeout']),
        ('worker_status', ARRAY['pid', 'worker', 'state', 'job_id', 'task',
                                'job_started_at', 'jobs_done', 'started_at']),
        ('workflow_dot', ARRAY['workflow_id'])$$,
    'pg_proc.proargnames of the API functions are the documented argument names');
SELECT is(pg_get_function_arguments('procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text, text, bigint)'::regprocedure),
    'task text, args jsonb DEFAULT ''{}''::jsonb, queue text DEFAULT ''default''::text, '
    'priority integer DEFAULT 0, scheduled_at timestamp with time zone DEFAULT NULL::timestamp with time zone, '
    'depends_on bigint[] DEFAULT NULL::bigint[], max_attempts integer DEFAULT 1, '
    'lock text DEFAULT NULL::text, queueing_lock text DEFAULT NULL::text, '
    'run_after text DEFAULT ''success''::text, workflow_id bigint DEFAULT NULL::bigint',
    'procq.defer: argument names and defaults');
SELECT is(pg_get_function_arguments('procq.defer_workflow(jsonb, bigint)'::regprocedure),
    'steps jsonb, workflow_id bigint DEFAULT NULL::bigint',
    'procq.defer_workflow: argument names and default');
SELECT is(pg_get_function_result('procq.defer_workflow(jsonb, bigint)'::regprocedure),
    'TABLE(key text, job_id bigint)',
    'procq.defer_workflow returns TABLE(key text, job_id bigint)');
SELECT is(pg_get_function_arguments('procq.fetch_job(text[], text, text[])'::regprocedure),
    'queues text[] DEFAULT NULL::text[], worker text DEFAULT NULL::text, tasks text[] DEFAULT NULL::text[]',
    'procq.fetch_job: argument names and defaults');
SELECT is(pg_get_function_arguments('procq.fetch_jobs(integer, text[], text, text[])'::regprocedure),
    'n integer, queues text[] DEFAULT NULL::text[], worker text DEFAULT NULL::text, '
    'tasks text[] DEFAULT NULL::text[]',
    'procq.fetch_jobs: argument names and defaults');
SELECT is(pg_get_function_arguments('procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[], integer[])'::regprocedure),
    'job_ids bigint[], status procq.job_status, results jsonb[] DEFAULT NULL::jsonb[], '
    'errors text[] DEFAULT NULL::text[], attempts integer[] DEFAULT NULL::integer[]',
    'procq.finish_jobs: argument names and defaults');
SELECT is(pg_get_function_result('procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[], integer[])'::regprocedure),
    'TABLE(job_id bigint, status procq.job_status)',
    'procq.finish_jobs returns TABLE(job_id bigint, status procq.job_status)');
SELECT is(pg_get_function_arguments('procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text, text, bigint)'::regprocedure),
    'task text, args jsonb[], queue text DEFAULT ''default''::text, '
    'priority integer DEFAULT 0, scheduled_at timestamp with time zone DEFAULT NULL::timestamp with time zone, '
    'depends_on bigint[] DEFAULT NULL::bigint[], max_attempts integer DEFAULT 1, '
    'lock text DEFAULT NULL::text, run_after text DEFAULT ''success''::text, '
    'workflow_id bigint DEFAULT NULL::bigint',
    'procq.defer_jobs: argument names and defaults');
-- the calls of 1.0 and the new ones resolve to one function each
SELECT lives_ok($$SELECT * FROM procq.fetch_job() WHERE false$$, 'fetch_job() is not ambiguous');
SELECT lives_ok($$SELECT * FROM procq.fetch_job(ARRAY['none'], 'w') WHERE false$$,
    'fetch_job(queues, worker) by position still works');
SELECT lives_ok($$SELECT * FROM procq.fetch_job(worker => 'w', tasks => ARRAY['none']) WHERE false$$,
    'fetch_job(worker =>, tasks =>) by name');
SELECT is(pg_get_function_arguments('procq.finish_job(bigint, procq.job_status, jsonb, text, integer)'::regprocedure),
    'job_id bigint, status procq.job_status, result jsonb DEFAULT NULL::jsonb, error text DEFAULT NULL::text, '
    'attempt integer DEFAULT NULL::integer',
    'procq.finish_job: argument names and defaults');
SELECT is(pg_get_function_arguments('procq.retry_job(bigint, timestamptz)'::regprocedure),
    'job_id bigint, scheduled_at timestamp with time zone DEFAULT NULL::timestamp with time zone',
    'procq.retry_job: argument names and defaults');
SELECT is(pg_get_function_arguments('procq.cancel_job(bigint, boolean)'::regprocedure),
    'job_id bigint, abort boolean DEFAULT false', 'procq.cancel_job: argument names and default');
SELECT is(pg_get_function_arguments('procq.register_handler(text, text, text, interval)'::regprocedure),
    'task text, kind text, command text, timeout interval DEFAULT NULL::interval',
    'procq.register_handler: argument names and default');
SELECT is(pg_get_function_arguments('procq.unregister_handler(text)'::regprocedure),
    'task text', 'procq.unregister_handler: argument name');
SELECT throws_ok($$SELECT procq.register_handler('t', 'sql', 'SELECT 1; SELECT 2')$$,
    '22023', NULL, 'a sql handler must be one statement');
SELECT throws_ok($$SELECT procq.register_handler('t', 'perl', 'x')$$,
    '22023', NULL, 'a handler kind other than sql or shell is an error');
SELECT is(pg_get_function_arguments('procq.heartbeat(bigint, integer)'::regprocedure),
    'job_id bigint, attempt integer DEFAULT NULL::integer', 'procq.heartbeat: argument names and default');
SELECT is(pg_get_function_arguments('procq.parent_results(bigint, boolean)'::regprocedure),
    'job_id bigint, by_key boolean DEFAULT false', 'procq.parent_results: argument names and default');
SELECT is(pg_get_function_arguments('procq.cancel_workflow(bigint, boolean)'::regprocedure),
    'workflow_id bigint, abort boolean DEFAULT false', 'procq.cancel_workflow: argument names and default');
SELECT is(pg_get_function_arguments('procq.defer_workflow_once(text, jsonb, bigint)'::regprocedure),
    'tick text, steps jsonb, workflow_id bigint DEFAULT NULL::bigint',
    'procq.defer_workflow_once: argument names and default');
SELECT is(pg_get_function_arguments('procq.workflow_dot(bigint)'::regprocedure),
    'workflow_id bigint', 'procq.workflow_dot: argument name, no default');
SELECT is(pg_get_function_arguments('procq.parents(bigint)'::regprocedure),
    'job_id bigint', 'procq.parents: argument name, no default');
SELECT is(pg_get_function_result('procq.parents(bigint)'::regprocedure),
    'TABLE(job_id bigint, task text, status procq.job_status, result jsonb, error text, step_key text)',
    'procq.parents returns TABLE(job_id, task, status, result, error, step_key)');
SELECT is(pg_get_function_arguments('procq.release_job(bigint, integer)'::regprocedure),
    'job_id bigint, attempt integer DEFAULT NULL::integer', 'procq.release_job: argument names and default');
SELECT function_returns('procq', 'release_job', ARRAY['bigint', 'integer'], 'procq.job_status',
    'procq.release_job returns the status it left the job in');
SELECT is(pg_get_function_result('procq.metrics()'::regprocedure),
    'TABLE(metric text, queue text, value double precision)',
    'procq.metrics returns TABLE(metric text, queue text, value double precision)');
SELECT is(pg_get_function_arguments('procq.purge(interval)'::regprocedure),
    'older_than interval', 'procq.purge: argument name, no default');
SELECT is(pg_get_function_arguments('procq.add_dependencies(bigint, bigint[])'::regprocedure),
    'job_id bigint, depends_on bigint[]', 'procq.add_dependencies: argument names, no defaults');

SELECT ok(
    (SELECT proretset AND prorettype = 'procq.jobs'::regtype FROM pg_proc
     WHERE oid = 'procq.fetch_job(text[], text, text[])'::regprocedure),
    'pg_proc: fetch_job returns SETOF procq.jobs (proretset, prorettype)');
SELECT ok(
    (SELECT proretset AND prorettype = 'procq.jobs'::regtype FROM pg_proc
     WHERE oid = 'procq.fetch_jobs(integer, text[], text, text[])'::regprocedure),
    'pg_proc: fetch_jobs returns SETOF procq.jobs (proretset, prorettype)');
SELECT ok(
    (SELECT proretset AND prorettype = 'bigint'::regtype FROM pg_proc
     WHERE oid = 'procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text, text, bigint)'::regprocedure),
    'pg_proc: defer_jobs returns SETOF bigint (proretset, prorettype)');
SELECT ok(
    (SELECT NOT proretset AND prorettype = 'procq.job_status'::regtype FROM pg_proc
     WHERE oid = 'procq.finish_job(bigint, procq.job_status, jsonb, text, integer)'::regprocedure),
    'pg_proc: finish_job returns one procq.job_status');

------------------------------------------------------------------------------
-- Safety: search_path pinned, no SECURITY DEFINER, nothing for PUBLIC
------------------------------------------------------------------------------

SELECT cmp_ok(
    (SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'procq'::regnamespace),
    '=', 38, 'procq has 38 functions (guards the checks below against passing vacuously)');
-- The functions called per row are the exception: jobs_status_normalize and
-- jobs_workflow_default (BEFORE row triggers) and the row check of procq.jobs run no SQL and look
-- nothing up by name, and a SET clause would save and restore a setting on
-- every row written.  The statement-level trigger functions pin it.
SELECT is_empty(
    $$SELECT oid::regprocedure FROM pg_proc
      WHERE pronamespace = 'procq'::regnamespace
        AND proname NOT IN ('jobs_status_normalize', 'jobs_workflow_default', 'jobs_row_check')
        AND NOT coalesce(proconfig::text[] && ARRAY['search_path=pg_catalog, pg_temp'], false)$$,
    'every procq function but the per-row ones pins search_path = pg_catalog, pg_temp (proconfig)');
SELECT set_eq(
    $$SELECT oid::regprocedure::text COLLATE "default" FROM pg_proc
      WHERE pronamespace = 'procq'::regnamespace AND proconfig IS NULL$$,
    ARRAY['procq.jobs_status_normalize()', 'procq.jobs_workflow_default()',
          'procq.jobs_row_check(text,text,procq.job_status,integer,integer,integer,boolean,boolean,'
          'timestamp with time zone,timestamp with time zone,timestamp with time zone,jsonb,'
          'timestamp with time zone,text,bigint,text,text,integer)'],
    'only the per-row triggers and the row check have no settings (they run no SQL)');
SELECT is_empty(
    $$SELECT oid::regprocedure FROM pg_proc
      WHERE pronamespace = 'procq'::regnamespace AND prosecdef$$,
    'no procq function is SECURITY DEFINER');
-- A NULL proacl means the default privileges, which include EXECUTE for
-- PUBLIC: look at the effective ACL.
SELECT is_empty(
    $$SELECT p.oid::regprocedure, a.privilege_type
      FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
      WHERE p.pronamespace = 'procq'::regnamespace AND a.grantee = 0$$,
    'PUBLIC has no EXECUTE (or any privilege) on any procq function');

-- The same seen by a role that was granted nothing but USAGE on the schema
-- (without USAGE, every call would fail on the schema, proving nothing).
CREATE ROLE procq_tap_nobody NOLOGIN;
CREATE ROLE procq_tap_app NOLOGIN;
GRANT USAGE ON SCHEMA procq TO procq_tap_nobody, procq_tap_app;

-- Runs a statement as a role and returns 'ok' or its SQLSTATE and message.
CREATE FUNCTION pg_temp.outcome_as(role name, stmt text) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    outcome text := 'ok';
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', role);
    BEGIN
        EXECUTE stmt;
    EXCEPTION WHEN OTHERS THEN
        outcome := SQLSTATE || ': ' || SQLERRM;
    END;
    RESET ROLE;
    RETURN outcome;
END
$fn$;

SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.defer('t')$$),
    '42501: permission denied for function defer',
    'a role without grants cannot call procq.defer');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.defer_workflow('[]')$$),
    '42501: permission denied for function defer_workflow',
    'a role without grants cannot call procq.defer_workflow');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT * FROM procq.fetch_job()$$),
    '42501: permission denied for function fetch_job',
    'a role without grants cannot call procq.fetch_job');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.finish_job(1, 'succeeded')$$),
    '42501: permission denied for function finish_job',
    'a role without grants cannot call procq.finish_job');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.retry_job(1)$$),
    '42501: permission denied for function retry_job',
    'a role without grants cannot call procq.retry_job');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.cancel_job(1)$$),
    '42501: permission denied for function cancel_job',
    'a role without grants cannot call procq.cancel_job');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.heartbeat(1)$$),
    '42501: permission denied for function heartbeat',
    'a role without grants cannot call procq.heartbeat');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.recover_stalled()$$),
    '42501: permission denied for function recover_stalled',
    'a role without grants cannot call procq.recover_stalled');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.parent_results(1)$$),
    '42501: permission denied for function parent_results',
    'a role without grants cannot call procq.parent_results');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT * FROM procq.fetch_jobs(1)$$),
    '42501: permission denied for function fetch_jobs',
    'a role without grants cannot call procq.fetch_jobs');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT * FROM procq.finish_jobs(ARRAY[1], 'succeeded')$$),
    '42501: permission denied for function finish_jobs',
    'a role without grants cannot call procq.finish_jobs');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT * FROM procq.defer_jobs('t', ARRAY['{}']::jsonb[])$$),
    '42501: permission denied for function defer_jobs',
    'a role without grants cannot call procq.defer_jobs');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.cancel_workflow(1)$$),
    '42501: permission denied for function cancel_workflow',
    'a role without grants cannot call procq.cancel_workflow');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.workflow_dot(1)$$),
    '42501: permission denied for function workflow_dot',
    'a role without grants cannot call procq.workflow_dot');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT * FROM procq.parents(1)$$),
    '42501: permission denied for function parents',
    'a role without grants cannot call procq.parents');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.defer_workflow_once('t', '[{"key": "a", "task": "t"}]')$$),
    '42501: permission denied for function defer_workflow_once',
    'a role without grants cannot call procq.defer_workflow_once');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT count(*) FROM procq.workflows$$),
    '42501: permission denied for view workflows',
    'a role without grants cannot read procq.workflows');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.release_job(1)$$),
    '42501: permission denied for function release_job',
    'a role without grants cannot call procq.release_job');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT count(*) FROM procq.metrics()$$),
    '42501: permission denied for function metrics',
    'a role without grants cannot call procq.metrics');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT count(*) FROM procq.queue_stats$$),
    '42501: permission denied for view queue_stats',
    'a role without grants cannot read procq.queue_stats');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT procq.purge('1 day')$$),
    '42501: permission denied for function purge',
    'a role without grants cannot call procq.purge');
SELECT is(pg_temp.outcome_as('procq_tap_nobody', $$SELECT count(*) FROM procq.jobs$$),
    '42501: permission denied for table jobs',
    'a role without grants cannot read procq.jobs');

-- The documented grants for an application role: USAGE on the schema and
-- EXECUTE on the API, no table privileges; the API then works.
GRANT EXECUTE ON FUNCTION
    procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text, text, bigint),
    procq.fetch_job(text[], text, text[]),
    procq.finish_job(bigint, procq.job_status, jsonb, text, integer),
    procq.parent_results(bigint, boolean),
    procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text, text, bigint),
    procq.fetch_jobs(integer, text[], text, text[]),
    procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[], integer[])
TO procq_tap_app;
SELECT is(pg_temp.outcome_as('procq_tap_app',
        $stmt$DO $do$
          DECLARE
              p bigint := procq.defer('tap parent', queue => 'tap_privs');
              c bigint := procq.defer('tap child', queue => 'tap_privs', depends_on => ARRAY[p]);
              j procq.jobs;
          BEGIN
              SELECT * INTO j FROM procq.fetch_job(ARRAY['tap_privs']);
              IF j.id IS DISTINCT FROM p THEN RAISE 'fetched % instead of %', j.id, p; END IF;
              PERFORM procq.finish_job(p, 'succeeded', '{"n": 1}');
              SELECT * INTO j FROM procq.fetch_job(ARRAY['tap_privs']);
              IF j.id IS DISTINCT FROM c THEN RAISE 'fetched % instead of %', j.id, c; END IF;
              IF procq.parent_results(c) <> jsonb_build_object(p::text, '{"n": 1}'::jsonb) THEN
                  RAISE 'wrong parent_results %', procq.parent_results(c);
              END IF;
              PERFORM procq.finish_job(c, 'succeeded');
          END
          $do$$stmt$),
    'ok',
    'a role with USAGE and EXECUTE only runs a parent and child job through the API');
SELECT is(pg_temp.outcome_as('procq_tap_app',
        $stmt$DO $do$
          DECLARE
              ids bigint[] := ARRAY(SELECT procq.defer_jobs('tap batch',
                                        ARRAY['{"n": 1}', '{"n": 2}']::jsonb[], queue => 'tap_batch'));
              got bigint[];
          BEGIN
              got := ARRAY(SELECT id FROM procq.fetch_jobs(10, ARRAY['tap_batch']) ORDER BY id);
              IF got IS DISTINCT FROM ids THEN RAISE 'fetched % instead of %', got, ids; END IF;
              IF (SELECT count(*) FROM procq.finish_jobs(ids, 'succeeded')
                  WHERE status = 'succeeded') <> 2 THEN RAISE 'finish_jobs did not finish both'; END IF;
          END
          $do$$stmt$),
    'ok',
    'a role with USAGE and EXECUTE only defers, fetches and finishes a batch');
SELECT is(pg_temp.outcome_as('procq_tap_app', $$SELECT count(*) FROM procq.jobs$$),
    '42501: permission denied for table jobs',
    '... while it still cannot read procq.jobs directly');

------------------------------------------------------------------------------
-- Error SQLSTATEs
------------------------------------------------------------------------------

SELECT procq.defer('tap todo', queue => 'tap_errors') AS todo_id \gset
SELECT procq.defer('tap doing', queue => 'tap_doing') AS doing_id \gset
SELECT id AS fetched_id FROM procq.fetch_job(ARRAY['tap_doing']) \gset
SELECT is(:fetched_id::bigint, :doing_id::bigint, 'setup: the doing job was fetched');
SELECT max(id) + 1000 AS missing_id FROM procq.jobs \gset

-- defer
SELECT throws_ok($$SELECT procq.defer('t', max_attempts => 0)$$,
    '22023', 'max_attempts must be at least 1',
    'defer: max_attempts 0 -> 22023');
SELECT throws_ok($$SELECT procq.defer(NULL)$$,
    '22004', 'task must not be null',
    'defer: NULL task -> 22004');
SELECT throws_ok($$SELECT procq.defer('t', queue => NULL)$$,
    '22004', 'queue must not be null',
    'defer: NULL queue -> 22004');
SELECT throws_ok($$SELECT procq.defer('')$$,
    '22023', 'task must not be empty',
    'defer: empty task -> 22023');
SELECT throws_ok($$SELECT procq.defer('t', lock => '')$$,
    '22023', 'lock must not be empty',
    'defer: empty lock -> 22023');
SELECT throws_ok(format('SELECT procq.defer(%L, depends_on => ARRAY[%s])', 't', :missing_id),
    '23503', format('job %s named in depends_on does not exist', :missing_id),
    'defer: unknown parent -> 23503');
SELECT throws_ok(format('SELECT procq.defer(%L, depends_on => ARRAY[%s, NULL])', 't', :todo_id),
    '22004', 'depends_on must not contain NULL',
    'defer: NULL in depends_on -> 22004');
SELECT lives_ok($$SELECT procq.defer('t', queue => 'tap_ql', queueing_lock => 'tap-unique')$$,
    'defer: a first todo job with a queueing_lock');
SELECT throws_ok($$SELECT procq.defer('t', queue => 'tap_ql', queueing_lock => 'tap-unique')$$,
    '23505', 'a todo job with queueing_lock "tap-unique" already exists',
    'defer: a second todo job with the same queueing_lock -> 23505');

-- defer_workflow
SELECT throws_ok($$SELECT * FROM procq.defer_workflow('{"key": "a"}')$$,
    '22023', NULL,
    'defer_workflow: steps not an array -> 22023');
SELECT throws_ok(
    $$SELECT * FROM procq.defer_workflow('[{"key": "a", "task": "t", "depends_on": ["b"]},
                                           {"key": "b", "task": "t", "depends_on": ["a"]}]')$$,
    '22023', 'workflow steps depend on each other in a cycle',
    'defer_workflow: a cycle -> 22023');

-- finish_job
SELECT throws_ok(format('SELECT procq.finish_job(%s, %L)', :todo_id, 'succeeded'),
    '55000', format('job %s is not running', :todo_id),
    'finish_job on a todo job -> 55000');
SELECT throws_ok(format('SELECT procq.finish_job(%s, %L)', :missing_id, 'succeeded'),
    'P0002', format('job %s does not exist', :missing_id),
    'finish_job on an unknown id -> P0002');
SELECT throws_ok(format('SELECT procq.finish_job(%s, %L)', :doing_id, 'todo'),
    '22023', 'a job cannot be finished with status todo',
    'finish_job with status todo -> 22023');
SELECT throws_ok(format('SELECT procq.finish_job(%s, %L, %L)', :doing_id, 'failed', '{}'),
    '22023', 'only a succeeded job can have a result',
    'finish_job failed with a result -> 22023');
SELECT throws_ok(format('SELECT procq.finish_job(NULL, %L)', 'succeeded'),
    '22004', 'job_id must not be null',
    'finish_job with a NULL job_id -> 22004');

-- purge
SELECT throws_ok($$SELECT procq.purge(NULL)$$,
    '22004', 'older_than must not be null',
    'purge with a NULL older_than -> 22004');
SELECT throws_ok($$SELECT procq.purge('-1 day')$$,
    '22023', 'older_than must not be negative',
    'purge with a negative older_than -> 22023');

-- retry_job, cancel_job, heartbeat, parent_results
SELECT throws_ok(format('SELECT procq.retry_job(%s)', :todo_id),
    '55000', format('job %s cannot be retried', :todo_id),
    'retry_job of a todo job -> 55000');
SELECT throws_ok(format('SELECT procq.retry_job(%s)', :missing_id),
    'P0002', format('job %s does not exist', :missing_id),
    'retry_job of an unknown id -> P0002');
SELECT throws_ok(format('SELECT procq.cancel_job(%s)', :missing_id),
    'P0002', format('job %s does not exist', :missing_id),
    'cancel_job of an unknown id -> P0002');
SELECT is(procq.cancel_job(:doing_id), false, 'cancel_job of a doing job returns false');
SELECT throws_ok(format('SELECT procq.heartbeat(%s)', :todo_id),
    '55000', format('job %s is not running', :todo_id),
    'heartbeat of a todo job -> 55000');
SELECT throws_ok(format('SELECT procq.parent_results(%s)', :missing_id),
    'P0002', format('job %s does not exist', :missing_id),
    'parent_results of an unknown id -> P0002');

-- the batch functions
SELECT throws_ok($$SELECT * FROM procq.fetch_jobs(0)$$,
    '22023', 'n must be at least 1', 'fetch_jobs: n 0 -> 22023');
SELECT throws_ok(format('SELECT * FROM procq.finish_jobs(ARRAY[%s], %L)', :todo_id, 'succeeded'),
    '55000', format('job %s is not running', :todo_id),
    'finish_jobs with a todo job -> 55000');
SELECT throws_ok(format('SELECT * FROM procq.finish_jobs(ARRAY[%s], %L, ARRAY[%L, %L]::jsonb[])',
                        :doing_id, 'succeeded', '{}', '{}'),
    '22023', 'results must have one element per job',
    'finish_jobs with more results than jobs -> 22023');
SELECT throws_ok($$SELECT * FROM procq.defer_jobs('t', ARRAY['{}', NULL]::jsonb[])$$,
    '22004', 'args must not contain NULL', 'defer_jobs: a NULL element of args -> 22004');

-- fencing: a lost lease (PQ001) and an aborted job (PQ002)
SELECT throws_ok(format('SELECT procq.finish_job(%s, %L, attempt => 2)', :doing_id, 'succeeded'),
    'PQ001', format('job %s is no longer running in attempt 2', :doing_id),
    'finish_job in an attempt the job no longer runs in -> PQ001');
SELECT throws_ok(format('SELECT procq.heartbeat(%s, attempt => 2)', :doing_id),
    'PQ001', format('job %s is no longer running in attempt 2', :doing_id),
    'heartbeat in an attempt the job no longer runs in -> PQ001');
SELECT throws_ok(format('SELECT * FROM procq.finish_jobs(ARRAY[%s], %L, attempts => ARRAY[2])', :doing_id, 'succeeded'),
    'PQ001', format('job %s is no longer running in attempt 2', :doing_id),
    'finish_jobs in an attempt the job no longer runs in -> PQ001');
SELECT procq.defer('tap aborted', queue => 'tap_aborted') AS aborted_id \gset
SELECT is((SELECT id FROM procq.fetch_job(ARRAY['tap_aborted'])), :aborted_id::bigint,
    'setup: the job to abort was fetched');
SELECT is(procq.cancel_job(:aborted_id, abort => true), true, 'setup: the job was aborted');
SELECT throws_ok(format('SELECT procq.finish_job(%s, %L, attempt => 1)', :aborted_id, 'succeeded'),
    'PQ002', format('job %s was aborted', :aborted_id),
    'finish_job of an aborted job -> PQ002');
SELECT throws_ok(format('SELECT procq.heartbeat(%s)', :aborted_id),
    'PQ002', format('job %s was aborted', :aborted_id),
    'heartbeat of an aborted job -> PQ002');

-- finish_job returns the status the job ended in.
SELECT is(procq.finish_job(:doing_id, 'succeeded', '{"ok": true}'), 'succeeded'::procq.job_status,
    'finish_job returns the final status');

SELECT * FROM finish();
ROLLBACK;
