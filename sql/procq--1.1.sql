-- procq 1.1: a dependency-aware job queue inside PostgreSQL.
--
-- The full install script of version 1.1; an installed 1.0 reaches the same
-- catalog with ALTER EXTENSION procq UPDATE (procq--1.0--1.1.sql).  Objects
-- new in 1.1 are appended at the end of each section, in the same order as
-- in the update script, so that both give the same catalog.
--
-- Objects are schema-qualified, functions pin their search_path, and nothing
-- is granted to PUBLIC: a DBA grants what application roles need (README,
-- "Privileges").  The API functions run as the caller; their internal
-- statements run as the extension owner (see pq_exec in src/spi_exec.c).

\echo Use "CREATE EXTENSION procq" to load this file. \quit

-- issue 8, hostile: procq is installed only into a schema that a superuser
-- owns (CREATE EXTENSION creates it so, or uses one created beforehand).  A
-- schema procq that another role created first (one who may create schemas
-- in the database) would let that role drop or rename procq's objects and
-- put look-alikes in their place, which the C code would then use as the
-- extension's, and the background workers run as a superuser.
DO $$
DECLARE
    owner pg_catalog.text;
BEGIN
    SELECT r.rolname INTO owner
      FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'procq'::pg_catalog.name AND NOT r.rolsuper;
    IF FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = pg_catalog.format('schema procq is owned by role %s, which is not a superuser', owner),
            DETAIL = 'Its owner could replace procq''s objects, which run as a superuser.',
            HINT = 'Drop the schema, or give it to a superuser with ALTER SCHEMA procq OWNER TO, first.';
    END IF;
END
$$;

CREATE TYPE procq.job_status AS ENUM ('todo', 'doing', 'succeeded', 'failed', 'cancelled');
COMMENT ON TYPE procq.job_status IS
    'todo: waiting or ready; doing: fetched by a worker; succeeded, failed, cancelled: final';

-- The invariants of a row of procq.jobs, checked by its CHECK constraint
-- jobs_row_valid (src/jobs.c).  One C call replaces the 13 CHECK constraints
-- of procq 1.0, which PostgreSQL read and compiled again for every INSERT
-- and UPDATE statement; a violation still fails with SQLSTATE 23514 and
-- names the invariant as its 1.0 constraint did.  It also limits task,
-- queue, lock and queueing_lock to 255 characters (issue 8): they go into
-- btree indexes and the queue into NOTIFY payloads, and a longer name would
-- fail in the transaction of whoever makes the job ready.  Like any CHECK constraint
-- (and unlike a trigger) it cannot be turned off.  No SET clause: it runs
-- no SQL, and a SET would cost a setting change per row.
CREATE FUNCTION procq.jobs_row_check(
    task text, queue text, status procq.job_status, attempts integer,
    max_attempts integer, pending_parents integer, lock_blocked boolean,
    delayed boolean, started_at timestamptz, lease_expires_at timestamptz,
    finished_at timestamptz, result jsonb, scheduled_at timestamptz,
    lock text, cancelled_by bigint, queueing_lock text, run_after text,
    failed_parents integer)
RETURNS boolean
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'procq_jobs_row_check';

CREATE TABLE procq.jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text NOT NULL DEFAULT 'default',
    task             text NOT NULL,
    args             jsonb NOT NULL DEFAULT '{}',
    status           procq.job_status NOT NULL DEFAULT 'todo',
    priority         integer NOT NULL DEFAULT 0,
    scheduled_at     timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 1,
    lock             text,
    queueing_lock    text,
    result           jsonb,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at       timestamptz,
    finished_at      timestamptz,
    worker           text,
    -- The role that deferred the job: a background worker runs its SQL
    -- handler with this role's privileges.
    deferred_by      regrole NOT NULL DEFAULT pg_catalog.quote_ident(current_user)::regrole,
    -- Bookkeeping kept exact by procq's C code; a job is ready to fetch when
    -- it is todo, pending_parents = 0, not lock_blocked and not delayed.
    pending_parents  integer NOT NULL DEFAULT 0,
    lock_blocked     boolean NOT NULL DEFAULT false,
    delayed          boolean NOT NULL DEFAULT false,
    lease_expires_at timestamptz,
    cancelled_by     bigint,
    -- issue 9: when the job runs (after its parents' 'success', their
    -- 'completion', or a 'failure' among them), how many parents ended
    -- without success, the workflow it belongs to and its step key.
    run_after        text NOT NULL DEFAULT 'success',
    failed_parents   integer NOT NULL DEFAULT 0,
    workflow_id      bigint NOT NULL,
    step_key         text,

    -- jobs_task_not_empty, jobs_queue_not_empty, jobs_max_attempts_positive,
    -- jobs_attempts_in_range, jobs_todo_has_attempts_left,
    -- jobs_pending_parents_not_negative, jobs_doing_is_runnable,
    -- jobs_finished_iff_final, jobs_result_only_on_success,
    -- jobs_delayed_needs_schedule, jobs_lock_blocked_needs_lock,
    -- jobs_lease_only_when_doing, jobs_cancelled_by_only_when_cancelled,
    -- jobs_task_length, jobs_queue_length, jobs_lock_length,
    -- jobs_queueing_lock_length, jobs_run_after_valid,
    -- jobs_failed_parents_not_negative (see procq_jobs_row_check in
    -- src/jobs.c)
    CONSTRAINT jobs_row_valid CHECK (procq.jobs_row_check(
        task, queue, status, attempts, max_attempts, pending_parents,
        lock_blocked, delayed, started_at, lease_expires_at, finished_at,
        result, scheduled_at, lock, cancelled_by, queueing_lock, run_after,
        failed_parents))
);

COMMENT ON TABLE procq.jobs IS 'procq jobs; create them with procq.defer or procq.defer_workflow';
COMMENT ON COLUMN procq.jobs.priority IS 'higher runs first; ties run in id order';
COMMENT ON COLUMN procq.jobs.lock IS 'at most one doing job per lock value; jobs sharing a lock start in id order';
COMMENT ON COLUMN procq.jobs.queueing_lock IS 'at most one todo job per value';
COMMENT ON COLUMN procq.jobs.pending_parents IS 'number of parents (job_dependencies.depends_on) the job still waits for: for run_after ''success'' those that have not succeeded, for ''completion'' and ''failure'' those that are not final (todo or doing)';
COMMENT ON COLUMN procq.jobs.lock_blocked IS 'an earlier job with the same lock is todo, or one is doing';
COMMENT ON COLUMN procq.jobs.delayed IS 'scheduled_at was in the future when last checked; fetch_job clears it when due';
COMMENT ON COLUMN procq.jobs.lease_expires_at IS 'a doing job whose lease ran out is put back by procq.recover_stalled';
COMMENT ON COLUMN procq.jobs.cancelled_by IS 'the parent whose failure cancelled this job; retrying that parent requeues it';

CREATE TABLE procq.job_dependencies (
    job_id     bigint NOT NULL REFERENCES procq.jobs (id) ON DELETE CASCADE,
    depends_on bigint NOT NULL REFERENCES procq.jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, depends_on)
    -- No CHECK depends_on < job_id (procq 1.0 had one): procq.add_dependencies
    -- (issue 9) gives existing jobs new parents, newer ones too, and keeps
    -- the graph acyclic itself, under concurrency (src/dependencies.c).
    -- defer cannot close a cycle: its child is new, nothing depends on it.
);
COMMENT ON TABLE procq.job_dependencies IS 'job_id depends on depends_on: it runs once its parents have done what its run_after asks (''success'': all succeeded; ''completion'': all final; ''failure'': all final and one did not succeed)';

CREATE INDEX job_dependencies_depends_on_idx ON procq.job_dependencies (depends_on, job_id);

-- Ready jobs, in fetch order, for all queues and per queue.  Jobs waiting on
-- parents, on a busy lock or for their scheduled time are not in these
-- indexes, so fetch cost does not grow with them.
-- They lead with deferred_by: a fetch reads only the parts of the roles
-- whose jobs the caller may take (src/authz.c), so ready jobs of other roles
-- cost it nothing.  The last condition of each always holds: it ties each
-- index to its kind of fetch (all queues, a queue, a task; see PQ_READY_ALL_COND
-- in src/procq.h).
CREATE INDEX jobs_ready_idx ON procq.jobs (deferred_by, priority DESC, id)
    WHERE status = 'todo' AND pending_parents = 0 AND NOT lock_blocked AND NOT delayed
      AND priority IS NOT NULL;
CREATE INDEX jobs_ready_queue_idx ON procq.jobs (deferred_by, queue, priority DESC, id)
    WHERE status = 'todo' AND pending_parents = 0 AND NOT lock_blocked AND NOT delayed
      AND queue IS NOT NULL;
-- ... and per task, for the background workers, which only take the tasks
-- they have handlers for (and fetches with a tasks filter).
CREATE INDEX jobs_ready_task_idx ON procq.jobs (deferred_by, task, priority DESC, id)
    WHERE status = 'todo' AND pending_parents = 0 AND NOT lock_blocked AND NOT delayed
      AND task IS NOT NULL;
-- Jobs scheduled for later, by time, so that fetch finds the due ones.
CREATE INDEX jobs_delayed_idx ON procq.jobs (scheduled_at)
    WHERE status = 'todo' AND delayed;
-- Lock queues: all live jobs per lock in id order, and the head of each.
CREATE INDEX jobs_lock_idx ON procq.jobs (lock, id)
    WHERE status IN ('todo', 'doing') AND lock IS NOT NULL;
CREATE INDEX jobs_lock_head_idx ON procq.jobs (lock)
    WHERE status IN ('todo', 'doing') AND lock IS NOT NULL AND NOT lock_blocked;
-- The bookkeeping keeps this true; the index makes it a hard guarantee.
CREATE UNIQUE INDEX jobs_one_doing_per_lock_idx ON procq.jobs (lock)
    WHERE status = 'doing' AND lock IS NOT NULL;
CREATE UNIQUE INDEX jobs_queueing_lock_idx ON procq.jobs (queueing_lock)
    WHERE status = 'todo' AND queueing_lock IS NOT NULL;
CREATE INDEX jobs_lease_idx ON procq.jobs (lease_expires_at)
    WHERE status = 'doing';
-- Finished jobs by age, for procq.purge and procq.retention (src/retention.c).
CREATE INDEX jobs_finished_idx ON procq.jobs (finished_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
-- Scheduled jobs that are fetchable but for their time, by role and time:
-- a fetch takes the due ones directly (src/fetch.c).
CREATE INDEX jobs_due_idx ON procq.jobs (deferred_by, scheduled_at)
    WHERE status = 'todo' AND delayed AND pending_parents = 0 AND NOT lock_blocked;
-- issue 9, workflows: the jobs of a workflow, in id order: procq.workflows,
-- cancel_workflow and workflow_dot read one range of it per workflow.
CREATE INDEX jobs_workflow_idx ON procq.jobs (workflow_id, id);

-- issue 10, stats: the live jobs (todo, doing) per queue, with what
-- procq.queue_stats tells apart, so that it reads them from this index and
-- never the finished jobs.
CREATE INDEX jobs_live_idx ON procq.jobs (queue)
    INCLUDE (status, pending_parents, lock_blocked, delayed, scheduled_at, created_at)
    WHERE status IN ('todo', 'doing');

-- Handlers: what the background workers run for a task (src/handlers.c).
CREATE TABLE procq.handlers (
    task          text PRIMARY KEY,
    kind          text NOT NULL,
    command       text NOT NULL,
    timeout       interval,
    registered_by regrole NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT handlers_kind CHECK (kind IN ('sql', 'shell')),
    CONSTRAINT handlers_command_not_empty CHECK (command <> ''),
    CONSTRAINT handlers_timeout_positive CHECK (timeout > interval '0'),
    -- issue 8, bounds: a task name is at most 255 characters, as in procq.jobs
    CONSTRAINT handlers_task_length CHECK (pg_catalog.length(task) <= 255)
);
COMMENT ON TABLE procq.handlers IS
    'background workers run jobs of these tasks; register with procq.register_handler';
COMMENT ON COLUMN procq.handlers.command IS
    'sql: one statement, $1 = args (jsonb), $2 = job id; shell: a program and its arguments';

-- Jobs are user data: pg_dump dumps them although the tables belong to the
-- extension.
SELECT pg_catalog.pg_extension_config_dump('procq.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('procq.handlers', '');
SELECT pg_catalog.pg_extension_config_dump('procq.job_dependencies', '');
SELECT pg_catalog.pg_extension_config_dump('procq.jobs_id_seq', '');

-- issue 10, events: the history of every job, one row per change of status
-- (C: src/events.c).  No foreign key to procq.jobs: a key check per event
-- would lock the job's row (FOR KEY SHARE) and cost every insert; instead
-- the events of a job go when the job goes (the trigger jobs_events_deleted,
-- so procq.purge, procq.retention and a DBA's DELETE alike; a TRUNCATE of
-- procq.jobs empties it too).  Written by a statement trigger of procq.jobs,
-- all of a statement's events in one pass, while procq.record_events is on.
CREATE TABLE procq.job_events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id  bigint NOT NULL,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    event   text NOT NULL,
    status  procq.job_status,
    attempt integer,
    worker  text,
    error   text,
    by_role regrole
);
COMMENT ON TABLE procq.job_events IS
    'history of the jobs: one row per change of status (procq.record_events); read with procq.job_history';
COMMENT ON COLUMN procq.job_events.event IS
    'deferred, fetched, succeeded, failed, retried, cancelled, released or stalled';
COMMENT ON COLUMN procq.job_events.status IS
    'the job''s status after the event (a failed attempt that will be retried: failed with status todo)';
COMMENT ON COLUMN procq.job_events.attempt IS
    'the attempt the event is about (fetched: the one that starts; released: the one handed back)';
COMMENT ON COLUMN procq.job_events.worker IS
    'the worker that ran (or now runs) the attempt';
COMMENT ON COLUMN procq.job_events.by_role IS
    'the session''s role (current_user outside functions) whose statement made the change';
-- procq.job_history(job_id) and the deletes that follow a job's: one range per job.
CREATE INDEX job_events_job_idx ON procq.job_events (job_id, id);
SELECT pg_catalog.pg_extension_config_dump('procq.job_events', '');
SELECT pg_catalog.pg_extension_config_dump('procq.job_events_id_seq', '');

-- issue 10, cron: the ticks of schedules that deferred a workflow, one row
-- per role and tick (procq.defer_workflow_once, C: src/ticks.c).  The
-- row and the workflow's jobs are inserted in one statement, so a tick
-- never defers twice, whatever runs its command again.  Dumped by pg_dump,
-- so that a restored database does not defer today's tick again.
CREATE TABLE procq.workflow_ticks (
    deferred_by regrole NOT NULL,
    tick        text NOT NULL,
    workflow_id bigint,
    deferred_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (deferred_by, tick),
    CONSTRAINT workflow_ticks_tick_valid
        CHECK (tick <> '' AND pg_catalog.length(tick) <= 255)
);
COMMENT ON TABLE procq.workflow_ticks IS
    'ticks of schedules that procq.defer_workflow_once deferred, per role: a tick listed here defers nothing again; delete rows of ticks that cannot come again';
COMMENT ON COLUMN procq.workflow_ticks.workflow_id IS
    'the workflow the tick deferred (NULL: a row inserted by hand, to skip the tick)';
SELECT pg_catalog.pg_extension_config_dump('procq.workflow_ticks', '');

-- issue 10, stats: the final jobs (succeeded, failed, cancelled) counted
-- per queue, as rows of deltas that the bookkeeping triggers add in the
-- transactions that change the jobs (never an UPDATE of a shared row, so
-- that finishing transactions do not wait for each other) and fold together
-- from time to time (src/stats.c); procq.queue_stats and procq.metrics()
-- sum them instead of counting millions of finished jobs.  Not dumped: a
-- restore counts the jobs it inserts.  The *_total columns count every entry
-- into a final status and never go down (Prometheus counters).
CREATE TABLE procq.queue_counts (
    queue           text NOT NULL,
    succeeded       bigint NOT NULL DEFAULT 0,
    failed          bigint NOT NULL DEFAULT 0,
    cancelled       bigint NOT NULL DEFAULT 0,
    succeeded_total bigint NOT NULL DEFAULT 0,
    failed_total    bigint NOT NULL DEFAULT 0,
    cancelled_total bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE procq.queue_counts IS
    'procq''s bookkeeping: per-queue deltas of the counts of final jobs, summed by procq.queue_stats (src/stats.c); do not edit';

------------------------------------------------------------------------------
-- SQL API (C: src/defer.c, src/workflow.c, src/fetch.c, src/lifecycle.c)
------------------------------------------------------------------------------

CREATE FUNCTION procq.defer(
    task text,
    args jsonb DEFAULT '{}',
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    scheduled_at timestamptz DEFAULT NULL,
    depends_on bigint[] DEFAULT NULL,
    max_attempts integer DEFAULT 1,
    lock text DEFAULT NULL,
    queueing_lock text DEFAULT NULL,
    run_after text DEFAULT 'success',
    workflow_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_defer';
COMMENT ON FUNCTION procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text, text, bigint) IS
    'insert a job and its dependencies atomically; returns the job id';

CREATE FUNCTION procq.defer_workflow(steps jsonb, workflow_id bigint DEFAULT NULL)
RETURNS TABLE (key text, job_id bigint)
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_defer_workflow';
COMMENT ON FUNCTION procq.defer_workflow(jsonb, bigint) IS
    'insert a DAG of jobs in one call, as one workflow (a new one, or workflow_id); steps name their parents by key or job id';

CREATE FUNCTION procq.fetch_job(
    queues text[] DEFAULT NULL,
    worker text DEFAULT NULL,
    tasks text[] DEFAULT NULL)
RETURNS SETOF procq.jobs
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_fetch_job';
COMMENT ON FUNCTION procq.fetch_job(text[], text, text[]) IS
    'take the best ready job (zero or one row) and mark it doing';

CREATE FUNCTION procq.finish_job(
    job_id bigint,
    status procq.job_status,
    result jsonb DEFAULT NULL,
    error text DEFAULT NULL,
    attempt integer DEFAULT NULL)
RETURNS procq.job_status
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_finish_job';
COMMENT ON FUNCTION procq.finish_job(bigint, procq.job_status, jsonb, text, integer) IS
    'end a doing job (in attempt, if given) as succeeded, failed (retried while attempts are left) or cancelled';

CREATE FUNCTION procq.retry_job(job_id bigint, scheduled_at timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_retry_job';
COMMENT ON FUNCTION procq.retry_job(bigint, timestamptz) IS
    'put a failed or cancelled job, and the descendants cancelled because of it, back to todo';

CREATE FUNCTION procq.cancel_job(job_id bigint, abort boolean DEFAULT false)
RETURNS boolean
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_cancel_job';
COMMENT ON FUNCTION procq.cancel_job(bigint, boolean) IS
    'cancel a todo job (with abort, also stop a doing one) and its waiting descendants';

CREATE FUNCTION procq.heartbeat(job_id bigint, attempt integer DEFAULT NULL)
RETURNS timestamptz
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_heartbeat';
COMMENT ON FUNCTION procq.heartbeat(bigint, integer) IS
    'extend a doing job''s lease (in attempt, if given) by procq.lease_duration; returns the new expiry';

CREATE FUNCTION procq.recover_stalled()
RETURNS integer
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_recover_stalled';
COMMENT ON FUNCTION procq.recover_stalled() IS
    'put doing jobs whose lease ran out back to todo (or failed); returns how many';

CREATE FUNCTION procq.parent_results(job_id bigint, by_key boolean DEFAULT false)
RETURNS jsonb
LANGUAGE C STABLE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_parent_results';
COMMENT ON FUNCTION procq.parent_results(bigint, boolean) IS
    'the results of the job''s parents, keyed by parent id (by_key: by their step_key)';

-- issue 7, batch: the batch API (C: src/fetch.c, src/finish.c, src/defer.c)
CREATE FUNCTION procq.fetch_jobs(
    n integer,
    queues text[] DEFAULT NULL,
    worker text DEFAULT NULL,
    tasks text[] DEFAULT NULL)
RETURNS SETOF procq.jobs
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_fetch_jobs';
COMMENT ON FUNCTION procq.fetch_jobs(integer, text[], text, text[]) IS
    'take up to n ready jobs in one statement, in fetch order, and mark them doing';

CREATE FUNCTION procq.finish_jobs(
    job_ids bigint[],
    status procq.job_status,
    results jsonb[] DEFAULT NULL,
    errors text[] DEFAULT NULL,
    attempts integer[] DEFAULT NULL)
RETURNS TABLE (job_id bigint, status procq.job_status)
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_finish_jobs';
COMMENT ON FUNCTION procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[], integer[]) IS
    'end doing jobs (each in its attempt, if given) as finish_job does, all or none; returns the status each ended in';

CREATE FUNCTION procq.defer_jobs(
    task text,
    args jsonb[],
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    scheduled_at timestamptz DEFAULT NULL,
    depends_on bigint[] DEFAULT NULL,
    max_attempts integer DEFAULT 1,
    lock text DEFAULT NULL,
    run_after text DEFAULT 'success',
    workflow_id bigint DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_defer_jobs';
COMMENT ON FUNCTION procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text, text, bigint) IS
    'insert one job per element of args, all depending on depends_on; returns their ids in order';
-- C: src/retention.c.  Not for application roles: it needs DELETE on
-- procq.jobs besides EXECUTE.
CREATE FUNCTION procq.purge(older_than interval)
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_purge';
COMMENT ON FUNCTION procq.purge(interval) IS
    'delete finished jobs older than older_than that no job depends on; returns how many';

-- issue 8, authz: what a producer needs to see its jobs and wait for a
-- result without SELECT on the tables (C: src/get_job.c)
CREATE FUNCTION procq.get_job(job_id bigint)
RETURNS procq.jobs
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_get_job';
COMMENT ON FUNCTION procq.get_job(bigint) IS
    'the job''s row, for a role that may act on it';

CREATE FUNCTION procq.get_jobs(job_ids bigint[])
RETURNS SETOF procq.jobs
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_get_jobs';
COMMENT ON FUNCTION procq.get_jobs(bigint[]) IS
    'the rows of the jobs of job_ids that exist, in that order, for a role that may act on each';

CREATE FUNCTION procq.wait_job(job_id bigint, timeout interval DEFAULT NULL)
RETURNS procq.jobs
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_wait_job';
COMMENT ON FUNCTION procq.wait_job(bigint, interval) IS
    'wait until the job has ended or timeout has passed; returns its row';

-- issue 9, add_dependencies: fan-out decided at run time (C: src/dependencies.c)
CREATE FUNCTION procq.add_dependencies(job_id bigint, depends_on bigint[])
RETURNS integer
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_add_dependencies';
COMMENT ON FUNCTION procq.add_dependencies(bigint, bigint[]) IS
    'make a todo job wait for more parents (newer ones too); refuses a cycle; returns how many dependency rows were added';

-- issue 9, workflows: workflows as a whole (C: src/workflows.c)
CREATE FUNCTION procq.cancel_workflow(workflow_id bigint, abort boolean DEFAULT false)
RETURNS integer
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_cancel_workflow';
COMMENT ON FUNCTION procq.cancel_workflow(bigint, boolean) IS
    'cancel every todo job of the workflow (abort: also stop its running ones); returns how many';

CREATE FUNCTION procq.workflow_dot(workflow_id bigint)
RETURNS text
LANGUAGE C STABLE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_workflow_dot';
COMMENT ON FUNCTION procq.workflow_dot(bigint) IS
    'the workflow as a Graphviz digraph: jobs coloured by status, conditions on the edges';

CREATE FUNCTION procq.parents(job_id bigint)
RETURNS TABLE (job_id bigint, task text, status procq.job_status, result jsonb,
               error text, step_key text)
LANGUAGE C STABLE PARALLEL UNSAFE ROWS 10
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_parents';
COMMENT ON FUNCTION procq.parents(bigint) IS
    'what the job''s parents did (status, result, error, step_key), in id order';

-- issue 10, events: a job's history, oldest first (C: src/events.c); who may
-- see the job (procq.get_job) may see its history.
CREATE FUNCTION procq.job_history(job_id bigint)
RETURNS SETOF procq.job_events
LANGUAGE C STABLE PARALLEL UNSAFE ROWS 10
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_job_history';
COMMENT ON FUNCTION procq.job_history(bigint) IS
    'the job''s events (procq.job_events), oldest first; P0002 when there is no such job, 42501 when it is another role''s';

-- One row per workflow, from one range of jobs_workflow_idx per workflow
-- (a query for one workflow_id reads only its jobs).  A security barrier:
-- the view reads procq.jobs with its owner's rights, so it shows a role
-- only the workflows whose first job (id = workflow_id; once that is
-- purged, the earliest remaining job) it may act on, as cancel_workflow and workflow_dot require, and every
-- workflow to a role that may read procq.jobs itself (monitoring).
-- skipped: jobs cancelled because their run_after condition could not hold
-- (cancelled_by NULL and the error PQ_ALL_SUCCEEDED_ERROR of src/cascade.h,
-- the same text); they do not make a workflow failed, but the jobs
-- cancelled through them (cancelled_by set) do.
CREATE VIEW procq.workflows WITH (security_barrier) AS
    SELECT w.workflow_id, f.task, w.jobs, w.todo, w.doing, w.succeeded,
           w.failed, w.cancelled,
           CASE WHEN w.todo + w.doing > 0 THEN 'running'
                WHEN w.succeeded + w.skipped = w.jobs THEN 'succeeded'
                ELSE 'failed' END AS state,
           w.created_at,
           CASE WHEN w.todo + w.doing > 0 THEN NULL ELSE w.finished_at END AS finished_at,
           w.skipped
    FROM (SELECT j.workflow_id,
                 COALESCE(pg_catalog.min(j.id) FILTER (WHERE j.id = j.workflow_id),
                          pg_catalog.min(j.id)) AS first_id,
                 pg_catalog.count(*) AS jobs,
                 pg_catalog.count(*) FILTER (WHERE j.status = 'todo') AS todo,
                 pg_catalog.count(*) FILTER (WHERE j.status = 'doing') AS doing,
                 pg_catalog.count(*) FILTER (WHERE j.status = 'succeeded') AS succeeded,
                 pg_catalog.count(*) FILTER (WHERE j.status = 'failed') AS failed,
                 pg_catalog.count(*) FILTER (WHERE j.status = 'cancelled') AS cancelled,
                 pg_catalog.count(*) FILTER (WHERE j.status = 'cancelled'
                                               AND j.cancelled_by IS NULL
                                               AND j.error = 'all its parents succeeded') AS skipped,
                 pg_catalog.min(j.created_at) AS created_at,
                 pg_catalog.max(j.finished_at) AS finished_at
          FROM procq.jobs j
          GROUP BY j.workflow_id) w
    JOIN procq.jobs f ON f.id = w.first_id
    WHERE pg_catalog.pg_has_role(f.deferred_by, 'USAGE')
       OR pg_catalog.has_table_privilege('procq.jobs'::pg_catalog.regclass, 'SELECT');
COMMENT ON VIEW procq.workflows IS
    'one row per workflow: job counts per status, state (running; succeeded when every job succeeded or was skipped; else failed), created_at, finished_at, skipped (jobs cancelled because their run_after condition could not hold: a ''failure'' step whose parents all succeeded; also counted in cancelled; jobs cancelled through a skipped one count against success)';

-- issue 10, stats: an external worker that stops hands a doing job back to
-- todo without using up an attempt (C: src/lifecycle.c).
CREATE FUNCTION procq.release_job(job_id bigint, attempt integer DEFAULT NULL)
RETURNS procq.job_status
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_release_job';
COMMENT ON FUNCTION procq.release_job(bigint, integer) IS
    'hand a doing job (in attempt, if given) back to todo at once, its attempt not counted; returns the status it is left in: todo, or failed when another todo job took its queueing_lock';

-- issue 10, cron: a workflow deferred at most once per tick of a schedule
-- (C: src/ticks.c)
CREATE FUNCTION procq.defer_workflow_once(tick text, steps jsonb, workflow_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_defer_workflow_once';
COMMENT ON FUNCTION procq.defer_workflow_once(text, jsonb, bigint) IS
    'defer_workflow, unless the calling role deferred this tick before: returns the workflow id, or NULL when the tick was deferred already';

-- issue 10, stats: one row per queue that has jobs.  The live jobs come from
-- jobs_live_idx (one pass over the todo and doing jobs), the final ones from
-- procq.queue_counts, finished_last_minute from a range of
-- jobs_finished_idx: no plan node reads the finished jobs (test/sql/
-- queue_stats.sql).  A todo job is counted in one of ready,
-- waiting_parents, waiting_lock, scheduled, in that order of precedence:
-- waiting on parents, else behind its lock, else scheduled in the future,
-- else ready (a due scheduled job is ready: a fetch takes it).
-- oldest_ready_age: since the oldest ready job was created or scheduled
-- (its scheduled_at: a retry reschedules), whichever is later.  Shows every
-- role's queues: grant SELECT on it to a monitoring role (README).
CREATE VIEW procq.queue_stats AS
    WITH live AS (
        SELECT j.queue,
               pg_catalog.count(*) FILTER (WHERE j.status = 'todo') AS todo,
               pg_catalog.count(*) FILTER (WHERE j.status = 'doing') AS doing,
               pg_catalog.count(*) FILTER (WHERE j.status = 'todo' AND j.pending_parents = 0
                   AND NOT j.lock_blocked
                   AND (NOT j.delayed OR j.scheduled_at <= pg_catalog.now())) AS ready,
               pg_catalog.count(*) FILTER (WHERE j.status = 'todo'
                   AND j.pending_parents > 0) AS waiting_parents,
               pg_catalog.count(*) FILTER (WHERE j.status = 'todo' AND j.pending_parents = 0
                   AND j.lock_blocked) AS waiting_lock,
               pg_catalog.count(*) FILTER (WHERE j.status = 'todo' AND j.pending_parents = 0
                   AND NOT j.lock_blocked AND j.delayed
                   AND j.scheduled_at > pg_catalog.now()) AS scheduled,
               pg_catalog.min(GREATEST(j.created_at, j.scheduled_at))
                   FILTER (WHERE j.status = 'todo' AND j.pending_parents = 0
                   AND NOT j.lock_blocked
                   AND (NOT j.delayed OR j.scheduled_at <= pg_catalog.now())) AS oldest_ready
        FROM procq.jobs j
        WHERE j.status IN ('todo', 'doing')
        GROUP BY j.queue),
    final AS (
        SELECT c.queue, pg_catalog.sum(c.succeeded)::bigint AS succeeded,
               pg_catalog.sum(c.failed)::bigint AS failed,
               pg_catalog.sum(c.cancelled)::bigint AS cancelled
        FROM procq.queue_counts c
        GROUP BY c.queue),
    recent AS (
        SELECT j.queue, pg_catalog.count(*) AS finished
        FROM procq.jobs j
        WHERE j.status IN ('succeeded', 'failed', 'cancelled')
          AND j.finished_at >= pg_catalog.now() - interval '1 minute'
        GROUP BY j.queue)
    SELECT q.queue,
           COALESCE(l.todo, 0) AS todo,
           COALESCE(l.doing, 0) AS doing,
           COALESCE(f.succeeded, 0) AS succeeded,
           COALESCE(f.failed, 0) AS failed,
           COALESCE(f.cancelled, 0) AS cancelled,
           COALESCE(l.ready, 0) AS ready,
           COALESCE(l.waiting_parents, 0) AS waiting_parents,
           COALESCE(l.waiting_lock, 0) AS waiting_lock,
           COALESCE(l.scheduled, 0) AS scheduled,
           pg_catalog.now() - l.oldest_ready AS oldest_ready_age,
           COALESCE(r.finished, 0) AS finished_last_minute
    FROM (SELECT live.queue FROM live
          UNION SELECT final.queue FROM final
          UNION SELECT recent.queue FROM recent) q
    LEFT JOIN live l ON l.queue = q.queue
    LEFT JOIN final f ON f.queue = q.queue
    LEFT JOIN recent r ON r.queue = q.queue
    WHERE l.queue IS NOT NULL OR r.queue IS NOT NULL
       OR f.succeeded <> 0 OR f.failed <> 0 OR f.cancelled <> 0;
COMMENT ON VIEW procq.queue_stats IS
    'one row per queue: jobs per status, todo jobs ready, waiting on parents, on a lock, scheduled; age of the oldest ready job; jobs finished in the last minute (no scan of the finished jobs)';

-- issue 10, stats: rows for a Prometheus exporter (postgres_exporter's
-- custom queries, docs/postgres_exporter.yaml); C: src/stats.c, which says
-- which metrics.  Reads as the owner: EXECUTE is all a monitoring role needs.
CREATE FUNCTION procq.metrics()
RETURNS TABLE (metric text, queue text, value double precision)
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 50
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_metrics';
COMMENT ON FUNCTION procq.metrics() IS
    'per-queue job counts, oldest ready age, finished totals and the background workers'' states, as (metric, queue, value) rows for Prometheus exporters';

------------------------------------------------------------------------------
-- Background workers (C: src/handlers.c, src/shmem.c)
------------------------------------------------------------------------------

CREATE FUNCTION procq.register_handler(
    task text,
    kind text,
    command text,
    timeout interval DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_register_handler';
COMMENT ON FUNCTION procq.register_handler(text, text, text, interval) IS
    'let the background workers run jobs of task with a sql or shell handler';

CREATE FUNCTION procq.unregister_handler(task text)
RETURNS boolean
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_unregister_handler';
COMMENT ON FUNCTION procq.unregister_handler(text) IS
    'stop running jobs of task in the background workers; false if it had no handler';

CREATE FUNCTION procq.worker_status(
    OUT pid integer,
    OUT worker text,
    OUT state text,
    OUT job_id bigint,
    OUT task text,
    OUT job_started_at timestamptz,
    OUT jobs_done bigint,
    OUT started_at timestamptz)
RETURNS SETOF record
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_worker_status';

CREATE VIEW procq.worker_status AS
    SELECT * FROM procq.worker_status();
COMMENT ON VIEW procq.worker_status IS
    'the background workers (shared_preload_libraries = procq): what each is doing';

------------------------------------------------------------------------------
-- Bookkeeping triggers (C: src/triggers.c, src/cascade.c, src/locks.c)
------------------------------------------------------------------------------

-- The trigger functions run no SQL of their own before they pin
-- search_path for the bookkeeping (src/triggers.c), so they need no SET
-- clause: a statement that changes no status pays no setting change.
CREATE FUNCTION procq.jobs_status_changed()
RETURNS trigger
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_jobs_status_changed';

CREATE FUNCTION procq.jobs_status_normalize()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'procq_jobs_status_normalize';

CREATE FUNCTION procq.jobs_deleted()
RETURNS trigger
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_jobs_deleted';

CREATE FUNCTION procq.dependency_deleted()
RETURNS trigger
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_dependency_deleted';

-- A DBA may change a status with a plain UPDATE (SET status = 'cancelled');
-- this fills in what the new status implies for the other columns
-- (finished_at, bookkeeping flags) so that the row stays valid.
CREATE TRIGGER jobs_status_normalize
    BEFORE UPDATE OF status ON procq.jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status <> 'doing')
    EXECUTE FUNCTION procq.jobs_status_normalize();

-- Any change of status (through the API or a DBA's UPDATE) releases,
-- cancels or requeues dependents and moves lock queues along.  Taking a job
-- (todo -> doing) needs none of that.  Once per statement, over the
-- statement's rows: one UPDATE that ends many jobs does its bookkeeping in
-- a few set-based statements.
CREATE TRIGGER jobs_status_changed
    AFTER UPDATE ON procq.jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.jobs_status_changed();

-- Deleted live jobs with a lock hand the lock on.
CREATE TRIGGER jobs_deleted
    AFTER DELETE ON procq.jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.jobs_deleted();

-- A dependency row that disappears (its parent or child was deleted, or a
-- DBA removed it) is accounted for; a parent deleted before it succeeded
-- cancels its dependents.
CREATE TRIGGER dependency_deleted
    AFTER DELETE ON procq.job_dependencies
    REFERENCING OLD TABLE AS old_dependencies
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.dependency_deleted();

-- issue 8, authz: direct DML on procq.handlers follows register_handler's
-- rules (C: src/handlers.c)
CREATE FUNCTION procq.handlers_check()
RETURNS trigger
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_handlers_check';

CREATE TRIGGER handlers_check
    BEFORE INSERT OR UPDATE OR DELETE ON procq.handlers
    FOR EACH ROW
    EXECUTE FUNCTION procq.handlers_check();

-- issue 9: a job inserted without a workflow_id (an INSERT that names none)
-- starts its own workflow, whose id is its own.
CREATE FUNCTION procq.jobs_workflow_default()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'procq_jobs_workflow_default';

CREATE TRIGGER jobs_workflow_default
    BEFORE INSERT ON procq.jobs
    FOR EACH ROW
    WHEN (NEW.workflow_id IS NULL)
    EXECUTE FUNCTION procq.jobs_workflow_default();

-- issue 10, events: every inserted job and every change of status is written
-- to procq.job_events, once per statement (all its rows in one pass), while
-- procq.record_events is on.  jobs_events_updated sorts before
-- jobs_status_changed, so a statement's own events come before those of the
-- cascades its bookkeeping makes.  The events of deleted jobs go with them.
CREATE FUNCTION procq.job_events_record()
RETURNS trigger
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_job_events_record';

CREATE FUNCTION procq.job_events_forget()
RETURNS trigger
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_job_events_forget';

CREATE TRIGGER jobs_events_inserted
    AFTER INSERT ON procq.jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.job_events_record();

CREATE TRIGGER jobs_events_updated
    AFTER UPDATE ON procq.jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.job_events_record();

CREATE TRIGGER jobs_events_deleted
    AFTER DELETE ON procq.jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.job_events_forget();

CREATE TRIGGER jobs_events_truncated
    AFTER TRUNCATE ON procq.jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.job_events_forget();

-- issue 10, stats: final jobs inserted as such (a defer whose parent already
-- failed, a restore) are counted in procq.queue_counts; the WHEN clause
-- keeps the inserts of todo jobs free.  A TRUNCATE leaves nothing counted.
-- (Updates and deletes are counted by jobs_status_changed and
-- jobs_deleted.)  C: src/stats.c.
CREATE FUNCTION procq.jobs_final_inserted()
RETURNS trigger
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_jobs_final_inserted';

CREATE TRIGGER jobs_final_inserted
    AFTER INSERT ON procq.jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION procq.jobs_final_inserted();

CREATE FUNCTION procq.jobs_truncated()
RETURNS trigger
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_jobs_truncated';

CREATE TRIGGER jobs_truncated
    AFTER TRUNCATE ON procq.jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.jobs_truncated();

------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; see README for the grants to give.
------------------------------------------------------------------------------

REVOKE ALL ON TABLE procq.jobs, procq.job_dependencies, procq.handlers,
    procq.worker_status, procq.workflows, procq.job_events, procq.workflow_ticks,
    procq.queue_counts, procq.queue_stats FROM PUBLIC;
REVOKE ALL ON SEQUENCE procq.jobs_id_seq, procq.job_events_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION
    procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text, text, bigint),
    procq.defer_workflow(jsonb, bigint),
    procq.fetch_job(text[], text, text[]),
    procq.finish_job(bigint, procq.job_status, jsonb, text, integer),
    procq.retry_job(bigint, timestamptz),
    procq.cancel_job(bigint, boolean),
    procq.register_handler(text, text, text, interval),
    procq.unregister_handler(text),
    procq.worker_status(),
    procq.heartbeat(bigint, integer),
    procq.recover_stalled(),
    procq.parent_results(bigint, boolean),
    procq.purge(interval),
    procq.jobs_status_changed(),
    procq.jobs_status_normalize(),
    procq.jobs_deleted(),
    procq.dependency_deleted(),
    procq.fetch_jobs(integer, text[], text, text[]),
    procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[], integer[]),
    procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text, text, bigint),
    procq.jobs_row_check(text, text, procq.job_status, integer, integer, integer, boolean,
        boolean, timestamptz, timestamptz, timestamptz, jsonb, timestamptz, text, bigint, text,
        text, integer),
    procq.get_job(bigint),
    procq.get_jobs(bigint[]),
    procq.wait_job(bigint, interval),
    procq.handlers_check(),
    procq.jobs_workflow_default(),
    procq.add_dependencies(bigint, bigint[]),
    procq.cancel_workflow(bigint, boolean),
    procq.workflow_dot(bigint),
    procq.parents(bigint),
    procq.release_job(bigint, integer),
    procq.job_history(bigint),
    procq.job_events_record(),
    procq.job_events_forget(),
    procq.defer_workflow_once(text, jsonb, bigint),
    procq.metrics(),
    procq.jobs_final_inserted(),
    procq.jobs_truncated()
FROM PUBLIC;
REVOKE ALL ON SCHEMA procq FROM PUBLIC;
