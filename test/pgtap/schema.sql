-- schema.sql: the catalog contract of procq's install script.
--
-- What clients, DBAs and pg_dump rely on: the procq schema and its objects,
-- the job_status enum (values and order), the columns and types of
-- procq.jobs and procq.job_dependencies, keys, cascading foreign keys,
-- the indexes that make dependency lookups cheap from either side, the
-- CHECK constraints that make impossible rows impossible even for a DBA
-- writing to the tables directly, the triggers that keep the bookkeeping
-- exact, and an extension that cannot be relocated (its C code names the
-- schema procq).
--
-- Run by scripts/run-tests.sh in a fresh database where pgtap and procq
-- are installed; everything happens in one transaction that is rolled back.

BEGIN;
SELECT plan(123);

------------------------------------------------------------------------------
-- Extension and schema
------------------------------------------------------------------------------

SELECT has_schema('procq', 'schema procq exists');
SELECT has_extension('procq', 'procq', 'extension procq is installed in schema procq');
SELECT is(
    (SELECT extrelocatable FROM pg_extension WHERE extname = 'procq'),
    false,
    'extension procq is not relocatable');
SELECT is(
    (SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'procq'),
    'procq',
    'extension procq lives in schema procq');
SELECT tables_are('procq', ARRAY['jobs', 'job_dependencies', 'handlers', 'job_events', 'queue_counts',
                                 'workflow_ticks'],
    'schema procq has exactly the tables jobs, job_dependencies, handlers, job_events, queue_counts and workflow_ticks');
SELECT set_eq(
    $$SELECT c.relname::text COLLATE "default"
      FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
      WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
        AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'procq')
        AND c.relkind = 'r'$$,
    ARRAY['jobs', 'job_dependencies', 'handlers', 'job_events', 'queue_counts', 'workflow_ticks'],
    'the tables are members of the extension');
SELECT set_eq(
    $$SELECT unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'procq'$$,
    ARRAY['procq.jobs', 'procq.job_dependencies', 'procq.jobs_id_seq', 'procq.handlers',
          'procq.job_events', 'procq.job_events_id_seq', 'procq.workflow_ticks'],
    'pg_dump dumps the jobs, their dependencies, the id sequence, the handlers, the job history and the ticks deferred (extension config tables)');

-- issue 10, events: the history of the jobs
SELECT columns_are('procq', 'job_events',
    ARRAY['id', 'job_id', 'at', 'event', 'status', 'attempt', 'worker', 'error', 'by_role'],
    'procq.job_events has exactly the documented columns');
SELECT col_is_pk('procq', 'job_events', 'id', 'the primary key of procq.job_events is id');
SELECT col_type_is('procq', 'job_events', 'status', 'procq.job_status',
    'job_events.status is a procq.job_status');
SELECT has_index('procq', 'job_events', 'job_events_job_idx', ARRAY['job_id', 'id'],
    'job_events_job_idx: a job''s events in id order (job_history, and the delete of a job''s events)');
SELECT is_empty(
    $$SELECT conname FROM pg_constraint WHERE conrelid = 'procq.job_events'::regclass AND contype = 'f'$$,
    'procq.job_events has no foreign key (the events of deleted jobs go by the jobs_events_deleted trigger)');

SELECT columns_are('procq', 'workflow_ticks',
    ARRAY['deferred_by', 'tick', 'workflow_id', 'deferred_at'],
    'procq.workflow_ticks has exactly the documented columns');
SELECT col_is_pk('procq', 'workflow_ticks', ARRAY['deferred_by', 'tick'],
    'procq.workflow_ticks: one row per role and tick');

SELECT columns_are('procq', 'handlers',
    ARRAY['task', 'kind', 'command', 'timeout', 'registered_by', 'registered_at'],
    'procq.handlers has exactly the documented columns');
SELECT col_is_pk('procq', 'handlers', 'task', 'procq.handlers: one handler per task');
SELECT col_type_is('procq', 'handlers', 'timeout', 'interval', 'handlers.timeout is interval');
SELECT throws_ok($$INSERT INTO procq.handlers (task, kind, command, registered_by)
                   VALUES ('t', 'python', 'x', 'postgres')$$,
    '23514', NULL, 'a handler kind other than sql or shell is rejected');
SELECT has_view('procq', 'worker_status', 'view procq.worker_status exists');
SELECT columns_are('procq', 'worker_status',
    ARRAY['pid', 'worker', 'state', 'job_id', 'task', 'job_started_at', 'jobs_done', 'started_at'],
    'procq.worker_status has the documented columns');
SELECT has_view('procq', 'workflows', 'view procq.workflows exists');
SELECT columns_are('procq', 'workflows',
    ARRAY['workflow_id', 'task', 'jobs', 'todo', 'doing', 'succeeded', 'failed', 'cancelled',
          'state', 'created_at', 'finished_at', 'skipped'],
    'procq.workflows has the documented columns');
-- issue 10, stats
SELECT has_view('procq', 'queue_stats', 'view procq.queue_stats exists');
SELECT columns_are('procq', 'queue_stats',
    ARRAY['queue', 'todo', 'doing', 'succeeded', 'failed', 'cancelled', 'ready',
          'waiting_parents', 'waiting_lock', 'scheduled', 'oldest_ready_age',
          'finished_last_minute'],
    'procq.queue_stats has the documented columns');
SELECT col_type_is('procq', 'queue_stats', 'oldest_ready_age', 'interval',
    'queue_stats.oldest_ready_age is an interval');
SELECT col_type_is('procq', 'queue_stats', 'finished_last_minute', 'bigint',
    'queue_stats.finished_last_minute is bigint');
SELECT has_index('procq', 'jobs', 'jobs_live_idx',
    ARRAY['queue', 'status', 'pending_parents', 'lock_blocked', 'delayed', 'scheduled_at', 'created_at'],
    'jobs_live_idx indexes the live jobs by queue (procq.queue_stats)');
SELECT is(
    (SELECT reloptions::text COLLATE "default" FROM pg_class WHERE oid = 'procq.workflows'::regclass),
    '{security_barrier=true}',
    'procq.workflows is a security barrier (it filters rows by the caller''s roles)');

------------------------------------------------------------------------------
-- procq.job_status
------------------------------------------------------------------------------

SELECT has_enum('procq', 'job_status', 'enum procq.job_status exists');
SELECT enum_has_labels('procq', 'job_status',
    ARRAY['todo', 'doing', 'succeeded', 'failed', 'cancelled'],
    'procq.job_status has exactly todo, doing, succeeded, failed, cancelled, in that order');

------------------------------------------------------------------------------
-- procq.jobs
------------------------------------------------------------------------------

SELECT has_table('procq', 'jobs', 'table procq.jobs exists');
SELECT columns_are('procq', 'jobs', ARRAY[
    'id', 'queue', 'task', 'args', 'status', 'priority', 'scheduled_at',
    'attempts', 'max_attempts', 'lock', 'queueing_lock', 'result', 'error',
    'created_at', 'started_at', 'finished_at', 'worker', 'pending_parents',
    'lock_blocked', 'delayed', 'lease_expires_at', 'cancelled_by', 'deferred_by',
    'run_after', 'failed_parents', 'workflow_id', 'step_key'],
    'procq.jobs has exactly the documented columns');

SELECT col_type_is('procq', 'jobs', 'id', 'bigint', 'jobs.id is bigint');
SELECT col_type_is('procq', 'jobs', 'queue', 'text', 'jobs.queue is text');
SELECT col_type_is('procq', 'jobs', 'task', 'text', 'jobs.task is text');
SELECT col_type_is('procq', 'jobs', 'args', 'jsonb', 'jobs.args is jsonb');
SELECT col_type_is('procq', 'jobs', 'status', 'procq', 'job_status', 'jobs.status is procq.job_status');
SELECT col_type_is('procq', 'jobs', 'priority', 'integer', 'jobs.priority is integer');
SELECT col_type_is('procq', 'jobs', 'scheduled_at', 'timestamp with time zone', 'jobs.scheduled_at is timestamptz');
SELECT col_type_is('procq', 'jobs', 'attempts', 'integer', 'jobs.attempts is integer');
SELECT col_type_is('procq', 'jobs', 'max_attempts', 'integer', 'jobs.max_attempts is integer');
SELECT col_type_is('procq', 'jobs', 'lock', 'text', 'jobs.lock is text');
SELECT col_type_is('procq', 'jobs', 'queueing_lock', 'text', 'jobs.queueing_lock is text');
SELECT col_type_is('procq', 'jobs', 'result', 'jsonb', 'jobs.result is jsonb');
SELECT col_type_is('procq', 'jobs', 'error', 'text', 'jobs.error is text');
SELECT col_type_is('procq', 'jobs', 'created_at', 'timestamp with time zone', 'jobs.created_at is timestamptz');
SELECT col_type_is('procq', 'jobs', 'started_at', 'timestamp with time zone', 'jobs.started_at is timestamptz');
SELECT col_type_is('procq', 'jobs', 'finished_at', 'timestamp with time zone', 'jobs.finished_at is timestamptz');
SELECT col_type_is('procq', 'jobs', 'worker', 'text', 'jobs.worker is text');
SELECT col_type_is('procq', 'jobs', 'pending_parents', 'integer', 'jobs.pending_parents is integer');
SELECT col_type_is('procq', 'jobs', 'lock_blocked', 'boolean', 'jobs.lock_blocked is boolean');
SELECT col_type_is('procq', 'jobs', 'delayed', 'boolean', 'jobs.delayed is boolean');
SELECT col_type_is('procq', 'jobs', 'lease_expires_at', 'timestamp with time zone', 'jobs.lease_expires_at is timestamptz');
SELECT col_type_is('procq', 'jobs', 'cancelled_by', 'bigint', 'jobs.cancelled_by is bigint');
SELECT col_type_is('procq', 'jobs', 'deferred_by', 'regrole', 'jobs.deferred_by is regrole');
SELECT col_type_is('procq', 'jobs', 'run_after', 'text', 'jobs.run_after is text');
SELECT col_type_is('procq', 'jobs', 'failed_parents', 'integer', 'jobs.failed_parents is integer');
SELECT col_type_is('procq', 'jobs', 'workflow_id', 'bigint', 'jobs.workflow_id is bigint');
SELECT col_type_is('procq', 'jobs', 'step_key', 'text', 'jobs.step_key is text');

SELECT set_eq(
    $$SELECT attname::text COLLATE "default" FROM pg_attribute
      WHERE attrelid = 'procq.jobs'::regclass AND attnum > 0 AND NOT attisdropped AND attnotnull$$,
    ARRAY['id', 'queue', 'task', 'args', 'status', 'priority', 'attempts',
          'max_attempts', 'created_at', 'deferred_by', 'pending_parents', 'lock_blocked', 'delayed',
          'run_after', 'failed_parents', 'workflow_id'],
    'exactly the documented columns of procq.jobs are NOT NULL');
SELECT is(
    (SELECT attidentity::text FROM pg_attribute
     WHERE attrelid = 'procq.jobs'::regclass AND attname = 'id'),
    'a',
    'jobs.id is GENERATED ALWAYS AS IDENTITY');
SELECT results_eq(
    $$SELECT a.attname::text COLLATE "default", pg_get_expr(d.adbin, d.adrelid) COLLATE "default"
      FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
      WHERE d.adrelid = 'procq.jobs'::regclass ORDER BY a.attnum$$,
    $$VALUES ('queue', '''default''::text'), ('args', '''{}''::jsonb'),
             ('status', '''todo''::procq.job_status'), ('priority', '0'),
             ('attempts', '0'), ('max_attempts', '1'),
             ('created_at', 'clock_timestamp()'),
             ('deferred_by', '(quote_ident((CURRENT_USER)::text))::regrole'),
             ('pending_parents', '0'),
             ('lock_blocked', 'false'), ('delayed', 'false'),
             ('run_after', '''success''::text'), ('failed_parents', '0')$$,
    'procq.jobs column defaults are the documented ones');

SELECT has_pk('procq', 'jobs', 'procq.jobs has a primary key');
-- A job inserted without a workflow starts its own (jobs_workflow_default).
INSERT INTO procq.jobs (task, status, finished_at) VALUES ('own workflow', 'cancelled', now());
SELECT is(
    (SELECT workflow_id = id FROM procq.jobs WHERE task = 'own workflow'),
    true, 'a job inserted without a workflow_id gets its own id as workflow_id');
SELECT col_is_pk('procq', 'jobs', ARRAY['id'], 'the primary key of procq.jobs is id');

-- The indexes the API's statements depend on.
SELECT has_index('procq', 'jobs', 'jobs_ready_idx', ARRAY['deferred_by', 'priority', 'id'],
    'jobs_ready_idx orders ready jobs by priority, id, per role');
SELECT has_index('procq', 'jobs', 'jobs_ready_queue_idx', ARRAY['deferred_by', 'queue', 'priority', 'id'],
    'jobs_ready_queue_idx orders ready jobs per role and queue');
SELECT has_index('procq', 'jobs', 'jobs_workflow_idx', ARRAY['workflow_id', 'id'],
    'jobs_workflow_idx indexes the jobs of each workflow in id order');
SELECT index_is_unique('procq', 'jobs', 'jobs_one_doing_per_lock_idx',
    'at most one doing job per lock value (unique index)');
SELECT is(
    (SELECT pg_get_expr(indpred, indrelid) COLLATE "default" FROM pg_index
     WHERE indexrelid = 'procq.jobs_one_doing_per_lock_idx'::regclass),
    '((status = ''doing''::procq.job_status) AND (lock IS NOT NULL))',
    'jobs_one_doing_per_lock_idx covers doing jobs with a lock only');
SELECT index_is_unique('procq', 'jobs', 'jobs_queueing_lock_idx',
    'at most one todo job per queueing_lock (unique index)');
SELECT is(
    (SELECT pg_get_expr(indpred, indrelid) COLLATE "default" FROM pg_index
     WHERE indexrelid = 'procq.jobs_queueing_lock_idx'::regclass),
    '((status = ''todo''::procq.job_status) AND (queueing_lock IS NOT NULL))',
    'jobs_queueing_lock_idx covers todo jobs with a queueing_lock only');

------------------------------------------------------------------------------
-- procq.job_dependencies
------------------------------------------------------------------------------

SELECT has_table('procq', 'job_dependencies', 'table procq.job_dependencies exists');
SELECT columns_are('procq', 'job_dependencies', ARRAY['job_id', 'depends_on'],
    'procq.job_dependencies has exactly job_id and depends_on');
SELECT col_type_is('procq', 'job_dependencies', 'job_id', 'bigint', 'job_dependencies.job_id is bigint');
SELECT col_type_is('procq', 'job_dependencies', 'depends_on', 'bigint', 'job_dependencies.depends_on is bigint');
SELECT col_not_null('procq', 'job_dependencies', 'job_id', 'job_dependencies.job_id is NOT NULL');
SELECT col_not_null('procq', 'job_dependencies', 'depends_on', 'job_dependencies.depends_on is NOT NULL');
SELECT col_is_pk('procq', 'job_dependencies', ARRAY['job_id', 'depends_on'],
    'the primary key of procq.job_dependencies is (job_id, depends_on)');

SELECT fk_ok('procq', 'job_dependencies', ARRAY['job_id'], 'procq', 'jobs', ARRAY['id'],
    'job_dependencies.job_id references jobs.id');
SELECT fk_ok('procq', 'job_dependencies', ARRAY['depends_on'], 'procq', 'jobs', ARRAY['id'],
    'job_dependencies.depends_on references jobs.id');
SELECT set_eq(
    $$SELECT a.attname::text COLLATE "default", c.confdeltype::text
      FROM pg_constraint c
      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
      WHERE c.conrelid = 'procq.job_dependencies'::regclass AND c.contype = 'f'$$,
    $$VALUES ('job_id', 'c'), ('depends_on', 'c')$$,
    'both foreign keys of job_dependencies are ON DELETE CASCADE (and there are no others)');

-- Children of a job (finish, cancel cascades) are found by depends_on,
-- parents of a job (defer, parent_results) by job_id: both need an index
-- that starts with that column.
SELECT has_index('procq', 'job_dependencies', 'job_dependencies_pkey', ARRAY['job_id', 'depends_on'],
    'job_dependencies_pkey indexes (job_id, depends_on)');
SELECT has_index('procq', 'job_dependencies', 'job_dependencies_depends_on_idx', ARRAY['depends_on', 'job_id'],
    'job_dependencies_depends_on_idx indexes (depends_on, job_id)');
SELECT set_eq(
    $$SELECT DISTINCT a.attname::text COLLATE "default"
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
      WHERE i.indrelid = 'procq.job_dependencies'::regclass AND i.indpred IS NULL$$,
    ARRAY['job_id', 'depends_on'],
    'job_dependencies can be searched from either side (full indexes leading with each column)');

------------------------------------------------------------------------------
-- Triggers
------------------------------------------------------------------------------

SELECT trigger_is('procq', 'jobs', 'jobs_status_changed', 'procq', 'jobs_status_changed',
    'jobs_status_changed runs procq.jobs_status_changed()');
SELECT trigger_is('procq', 'jobs', 'jobs_status_normalize', 'procq', 'jobs_status_normalize',
    'jobs_status_normalize runs procq.jobs_status_normalize()');
SELECT trigger_is('procq', 'jobs', 'jobs_deleted', 'procq', 'jobs_deleted',
    'jobs_deleted runs procq.jobs_deleted()');
SELECT trigger_is('procq', 'job_dependencies', 'dependency_deleted', 'procq', 'dependency_deleted',
    'dependency_deleted runs procq.dependency_deleted()');
SELECT trigger_is('procq', 'jobs', 'jobs_final_inserted', 'procq', 'jobs_final_inserted',
    'jobs_final_inserted runs procq.jobs_final_inserted()');
SELECT trigger_is('procq', 'jobs', 'jobs_truncated', 'procq', 'jobs_truncated',
    'jobs_truncated runs procq.jobs_truncated()');
-- The AFTER triggers run once per statement over its transition tables
-- (one UPDATE ending many jobs does its bookkeeping set-based); only the
-- BEFORE triggers, which run no SQL, are per row.
SELECT set_eq(
    $$SELECT tgname::text COLLATE "default", (tgtype & 1) = 1 AS for_each_row,
             tgoldtable IS NOT NULL AS old_table, tgnewtable IS NOT NULL AS new_table
      FROM pg_trigger
      WHERE tgrelid IN ('procq.jobs'::regclass, 'procq.job_dependencies'::regclass)
        AND NOT tgisinternal$$,
    $$VALUES ('jobs_status_normalize', true, false, false),
             ('jobs_workflow_default', true, false, false),
             ('jobs_status_changed', false, true, true),
             ('jobs_deleted', false, true, false),
             ('dependency_deleted', false, true, false),
             ('jobs_events_inserted', false, false, true),
             ('jobs_events_updated', false, true, true),
             ('jobs_events_deleted', false, true, false),
             ('jobs_events_truncated', false, false, false),
             ('jobs_final_inserted', true, false, false),
             ('jobs_truncated', false, false, false)$$,
    'the bookkeeping triggers: AFTER ... FOR EACH STATEMENT with transition tables, two BEFORE row triggers, the AFTER INSERT row trigger of final jobs (WHEN: todo inserts pay nothing) and the TRUNCATE trigger');

------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC on the schema, tables and sequence
------------------------------------------------------------------------------

SELECT is_empty(
    $$SELECT n.nspname FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
      WHERE n.nspname = 'procq' AND a.grantee = 0$$,
    'PUBLIC has no privilege on schema procq');
SELECT is_empty(
    $$SELECT c.relname, a.privilege_type
      FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
      WHERE c.relnamespace = 'procq'::regnamespace AND c.relkind IN ('r', 'S') AND a.grantee = 0$$,
    'PUBLIC has no privilege on the tables and the sequence of procq');

------------------------------------------------------------------------------
-- CHECK constraints: direct INSERTs of impossible rows are rejected.  Each
-- row breaks exactly one rule, named in the expected message.
------------------------------------------------------------------------------

-- A row that breaks no rule is accepted (the constraints are not simply
-- rejecting everything).
SELECT lives_ok(
    $$INSERT INTO procq.jobs (task) VALUES ('direct')$$,
    'a plain todo job can be inserted directly');

SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, status, max_attempts, finished_at)
      VALUES ('t', 'cancelled', 0, now())$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_max_attempts_positive"',
    'max_attempts 0 is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, status, attempts, max_attempts, lease_expires_at)
      VALUES ('t', 'doing', 1, 1, now())$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_doing_is_runnable"',
    'a doing job without started_at is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, status, attempts, started_at)
      VALUES ('t', 'doing', 1, now())$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_doing_is_runnable"',
    'a doing job without a lease is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, status, attempts, started_at, lease_expires_at, pending_parents)
      VALUES ('t', 'doing', 1, now(), now(), 1)$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_doing_is_runnable"',
    'a doing job with a pending parent is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, status, attempts, finished_at, result)
      VALUES ('t', 'failed', 1, now(), '{"x": 1}')$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_result_only_on_success"',
    'a result on a failed job is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, status, attempts) VALUES ('t', 'failed', 1)$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_finished_iff_final"',
    'a failed job without finished_at is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, finished_at) VALUES ('t', now())$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_finished_iff_final"',
    'a todo job with finished_at is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, attempts, max_attempts) VALUES ('t', 2, 2)$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_todo_has_attempts_left"',
    'a todo job without attempts left is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, status, attempts, max_attempts, finished_at)
      VALUES ('t', 'failed', 3, 2, now())$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_attempts_in_range"',
    'more attempts than max_attempts is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, pending_parents) VALUES ('t', -1)$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_pending_parents_not_negative"',
    'a negative pending_parents is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, lock_blocked) VALUES ('t', true)$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_lock_blocked_needs_lock"',
    'lock_blocked without a lock is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, delayed) VALUES ('t', true)$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_delayed_needs_schedule"',
    'delayed without scheduled_at is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, lease_expires_at) VALUES ('t', now())$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_lease_only_when_doing"',
    'a lease on a todo job is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, cancelled_by) VALUES ('t', 1)$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_cancelled_by_only_when_cancelled"',
    'cancelled_by on a todo job is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, run_after) VALUES ('t', 'sometimes')$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_run_after_valid"',
    'a run_after other than success, completion and failure is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, failed_parents) VALUES ('t', -1)$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_failed_parents_not_negative"',
    'a negative failed_parents is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task) VALUES ('')$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_task_not_empty"',
    'an empty task is rejected');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (task, queue) VALUES ('t', '')$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_queue_not_empty"',
    'an empty queue is rejected');
-- An UPDATE is checked as an INSERT is.
SELECT throws_ok(
    $$UPDATE procq.jobs SET pending_parents = -1 WHERE task = 'direct'$$,
    '23514', 'new row for relation "jobs" violates check constraint "jobs_pending_parents_not_negative"',
    'an UPDATE to a negative pending_parents is rejected');
-- All the invariants above are one CHECK constraint, a single C call per
-- row: 13 constraint expressions cost more than the API's own statements.
SELECT results_eq(
    $$SELECT conname::text COLLATE "default", pg_get_constraintdef(oid) COLLATE "default"
      FROM pg_constraint WHERE conrelid = 'procq.jobs'::regclass AND contype = 'c'$$,
    $$VALUES ('jobs_row_valid', 'CHECK (procq.jobs_row_check(task, queue, status, attempts, '
              'max_attempts, pending_parents, lock_blocked, delayed, started_at, lease_expires_at, '
              'finished_at, result, scheduled_at, lock, cancelled_by, queueing_lock, run_after, '
              'failed_parents))')$$,
    'procq.jobs has one CHECK constraint, jobs_row_valid, over every invariant of a row');
SELECT throws_ok(
    $$INSERT INTO procq.jobs (id, task) VALUES (1000000, 't')$$,
    '428C9', NULL,
    'job ids cannot be chosen (GENERATED ALWAYS)');

-- Dependencies: there is no CHECK depends_on < job_id any more (issue 9):
-- procq.add_dependencies gives a todo job parents newer than itself, and
-- keeps the graph acyclic itself (test/sql/add_dependencies.sql).
SELECT procq.defer('older') AS older_id \gset
SELECT procq.defer('newer') AS newer_id \gset
SELECT is(
    (SELECT count(*)::int FROM pg_constraint
     WHERE conrelid = 'procq.job_dependencies'::regclass AND contype = 'c'),
    0, 'procq.job_dependencies has no CHECK constraint (job_dependencies_parent_first is gone)');
SELECT throws_ok(
    format('SELECT procq.add_dependencies(%s, ARRAY[%s])', :newer_id, :newer_id),
    '22023', format('job %s cannot depend on job %s: that would close the cycle job %s -> job %s',
                    :newer_id, :newer_id, :newer_id, :newer_id),
    'a job cannot depend on itself (add_dependencies refuses it)');
SELECT throws_ok(
    format('INSERT INTO procq.job_dependencies (job_id, depends_on) VALUES (%s, 0)', :newer_id),
    '23503', NULL,
    'a dependency on a job that does not exist is rejected');
SELECT lives_ok(
    format('INSERT INTO procq.job_dependencies (job_id, depends_on) VALUES (%s, %s)',
           :newer_id, :older_id),
    'a dependency on a job with a lower id is accepted');
SELECT throws_ok(
    format('INSERT INTO procq.job_dependencies (job_id, depends_on) VALUES (%s, %s)',
           :newer_id, :older_id),
    '23505', NULL,
    'the same dependency cannot be recorded twice');

-- ON DELETE CASCADE in action: deleting either end removes the row.
SELECT lives_ok(
    format('DELETE FROM procq.jobs WHERE id = %s', :older_id),
    'a parent can be deleted while a dependency names it');
SELECT is_empty(
    format('SELECT 1 FROM procq.job_dependencies WHERE depends_on = %s OR job_id = %s',
           :older_id, :older_id),
    'deleting a job deletes its dependency rows');

SELECT * FROM finish();
ROLLBACK;
