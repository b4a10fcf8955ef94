-- procq 1.0 -> 1.1 (ALTER EXTENSION procq UPDATE TO '1.1').
--
-- Brings an installed 1.0 to the catalog of a fresh 1.1 install
-- (procq--1.1.sql); test/t/004_upgrade.pl checks that both are equal and
-- that the jobs survive.  Changes are grouped by the feature that needs them.

\echo Use "ALTER EXTENSION procq UPDATE TO '1.1'" to load this file. \quit

------------------------------------------------------------------------------
-- issue 7, batch: fetch_job's tasks filter, fetch_jobs, finish_jobs, defer_jobs
------------------------------------------------------------------------------

-- fetch_job gains tasks.  Keeping the 1.0 declaration beside the new one
-- would make fetch_job() and fetch_job(ARRAY['q'], 'w') ambiguous, so it is
-- replaced; every call of 1.0 (positional or named) means the same with the
-- new declaration.  The privileges granted on the old one carry over.
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
REVOKE ALL ON FUNCTION procq.fetch_job(text[], text, text[]) FROM PUBLIC;
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT a.grantee, a.is_grantable
        FROM pg_catalog.pg_proc p,
             pg_catalog.aclexplode(p.proacl) AS a
        WHERE p.oid = 'procq.fetch_job(text[], text)'::pg_catalog.regprocedure
          AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
    LOOP
        EXECUTE pg_catalog.format(
            'GRANT EXECUTE ON FUNCTION procq.fetch_job(text[], text, text[]) TO %s%s',
            CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::pg_catalog.regrole::text END,
            CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;
DROP FUNCTION procq.fetch_job(text[], text);

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
    errors text[] DEFAULT NULL)
RETURNS TABLE (job_id bigint, status procq.job_status)
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_finish_jobs';
COMMENT ON FUNCTION procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[]) IS
    'end doing jobs as finish_job does, all or none; returns the status each ended in';

CREATE FUNCTION procq.defer_jobs(
    task text,
    args jsonb[],
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    scheduled_at timestamptz DEFAULT NULL,
    depends_on bigint[] DEFAULT NULL,
    max_attempts integer DEFAULT 1,
    lock text DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_defer_jobs';
COMMENT ON FUNCTION procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text) IS
    'insert one job per element of args, all depending on depends_on; returns their ids in order';

REVOKE ALL ON FUNCTION
    procq.fetch_jobs(integer, text[], text, text[]),
    procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[]),
    procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text)
FROM PUBLIC;
-- issue 7, bookkeeping: statement-level bookkeeping triggers over transition
-- tables.  They keep their pinned search_path (set once per statement); the
-- row trigger jobs_status_normalize runs no SQL and looks nothing up by
-- name, so it drops its SET clause, which cost a setting saved and restored
-- on every row.
ALTER FUNCTION procq.jobs_status_normalize() RESET search_path;

DROP TRIGGER jobs_status_changed ON procq.jobs;
CREATE TRIGGER jobs_status_changed
    AFTER UPDATE ON procq.jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.jobs_status_changed();

DROP TRIGGER jobs_deleted ON procq.jobs;
CREATE TRIGGER jobs_deleted
    AFTER DELETE ON procq.jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.jobs_deleted();

DROP TRIGGER dependency_deleted ON procq.job_dependencies;
CREATE TRIGGER dependency_deleted
    AFTER DELETE ON procq.job_dependencies
    REFERENCING OLD TABLE AS old_dependencies
    FOR EACH STATEMENT
    EXECUTE FUNCTION procq.dependency_deleted();

-- issue 7, bookkeeping: the 13 CHECK constraints of procq.jobs become one,
-- jobs_row_valid, that checks the same invariants in one C call.
CREATE FUNCTION procq.jobs_row_check(
    task text, queue text, status procq.job_status, attempts integer,
    max_attempts integer, pending_parents integer, lock_blocked boolean,
    delayed boolean, started_at timestamptz, lease_expires_at timestamptz,
    finished_at timestamptz, result jsonb, scheduled_at timestamptz,
    lock text, cancelled_by bigint)
RETURNS boolean
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'procq_jobs_row_check';
REVOKE ALL ON FUNCTION procq.jobs_row_check(text, text, procq.job_status, integer, integer,
    integer, boolean, boolean, timestamptz, timestamptz, timestamptz, jsonb, timestamptz,
    text, bigint) FROM PUBLIC;

ALTER TABLE procq.jobs
    DROP CONSTRAINT jobs_task_not_empty,
    DROP CONSTRAINT jobs_queue_not_empty,
    DROP CONSTRAINT jobs_max_attempts_positive,
    DROP CONSTRAINT jobs_attempts_in_range,
    DROP CONSTRAINT jobs_todo_has_attempts_left,
    DROP CONSTRAINT jobs_pending_parents_not_negative,
    DROP CONSTRAINT jobs_doing_is_runnable,
    DROP CONSTRAINT jobs_finished_iff_final,
    DROP CONSTRAINT jobs_result_only_on_success,
    DROP CONSTRAINT jobs_delayed_needs_schedule,
    DROP CONSTRAINT jobs_lock_blocked_needs_lock,
    DROP CONSTRAINT jobs_lease_only_when_doing,
    DROP CONSTRAINT jobs_cancelled_by_only_when_cancelled,
    ADD CONSTRAINT jobs_row_valid CHECK (procq.jobs_row_check(
        task, queue, status, attempts, max_attempts, pending_parents,
        lock_blocked, delayed, started_at, lease_expires_at, finished_at,
        result, scheduled_at, lock, cancelled_by));
-- issue 7, retention: procq.purge and the index it walks (src/retention.c)
------------------------------------------------------------------------------

CREATE INDEX jobs_finished_idx ON procq.jobs (finished_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

CREATE FUNCTION procq.purge(older_than interval)
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_purge';
COMMENT ON FUNCTION procq.purge(interval) IS
    'delete finished jobs older than older_than that no job depends on; returns how many';
REVOKE ALL ON FUNCTION procq.purge(interval) FROM PUBLIC;

------------------------------------------------------------------------------
-- issue 8, fence: finish_job, heartbeat and finish_jobs take the attempt the
-- caller fetched (attempt / attempts, last, DEFAULT NULL).  Keeping the old
-- declarations beside the new ones would make every call without the new
-- argument ambiguous, so they are replaced; every earlier call means the
-- same.  The EXECUTE privileges granted on the old ones carry over.
------------------------------------------------------------------------------

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

CREATE FUNCTION procq.heartbeat(job_id bigint, attempt integer DEFAULT NULL)
RETURNS timestamptz
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_heartbeat';
COMMENT ON FUNCTION procq.heartbeat(bigint, integer) IS
    'extend a doing job''s lease (in attempt, if given) by procq.lease_duration; returns the new expiry';

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

REVOKE ALL ON FUNCTION
    procq.finish_job(bigint, procq.job_status, jsonb, text, integer),
    procq.heartbeat(bigint, integer),
    procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[], integer[])
FROM PUBLIC;

DO $$
DECLARE
    f record;
    g record;
BEGIN
    FOR f IN
        SELECT * FROM (VALUES
            ('procq.finish_job(bigint, procq.job_status, jsonb, text)',
             'procq.finish_job(bigint, procq.job_status, jsonb, text, integer)'),
            ('procq.heartbeat(bigint)',
             'procq.heartbeat(bigint, integer)'),
            ('procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[])',
             'procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[], integer[])'))
            AS v(old, new)
    LOOP
        FOR g IN
            SELECT a.grantee, a.is_grantable
            FROM pg_catalog.pg_proc p,
                 pg_catalog.aclexplode(p.proacl) AS a
            WHERE p.oid = f.old::pg_catalog.regprocedure
              AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
        LOOP
            EXECUTE pg_catalog.format(
                'GRANT EXECUTE ON FUNCTION %s TO %s%s', f.new,
                CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::pg_catalog.regrole::text END,
                CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END LOOP;
END
$$;
DROP FUNCTION procq.finish_job(bigint, procq.job_status, jsonb, text);
DROP FUNCTION procq.heartbeat(bigint);
DROP FUNCTION procq.finish_jobs(bigint[], procq.job_status, jsonb[], text[]);
-- issue 8, bounds: task, queue, lock and queueing_lock of at most 255
-- characters (and a handler's task), checked by jobs_row_valid and
-- handlers_task_length.
------------------------------------------------------------------------------

-- procq 1.0 accepted longer names.  The update does not shorten them (a
-- lock or queueing_lock cut short could merge two values into one), nor
-- drop them: it stops with an error naming the rows, and the DBA deletes or
-- renames them and runs ALTER EXTENSION procq UPDATE again (README, "Bounded
-- input").
DO $$
DECLARE
    n bigint;
    example bigint;
    handler text;
BEGIN
    SELECT count(*), min(id) INTO n, example FROM procq.jobs
    WHERE pg_catalog.length(task) > 255 OR pg_catalog.length(queue) > 255
       OR pg_catalog.length(lock) > 255 OR pg_catalog.length(queueing_lock) > 255;
    IF n > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'string_data_right_truncation',
            MESSAGE = pg_catalog.format('procq 1.1 allows at most 255 characters in task, queue, '
                                        'lock and queueing_lock, and %s jobs have more', n),
            DETAIL = pg_catalog.format('Job %s is one of them.', example),
            HINT = 'Delete those jobs, or give them shorter names with UPDATE procq.jobs, '
                   'then run ALTER EXTENSION procq UPDATE again.';
    END IF;
    SELECT count(*), min(task) INTO n, handler FROM procq.handlers
    WHERE pg_catalog.length(task) > 255;
    IF n > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'string_data_right_truncation',
            MESSAGE = pg_catalog.format('procq 1.1 allows at most 255 characters in a handler''s '
                                        'task, and %s handlers have more', n),
            DETAIL = pg_catalog.format('The handler of task "%s..." is one of them.',
                                       pg_catalog.left(handler, 40)),
            HINT = 'Remove them with procq.unregister_handler, '
                   'then run ALTER EXTENSION procq UPDATE again.';
    END IF;
END
$$;

ALTER TABLE procq.jobs DROP CONSTRAINT jobs_row_valid;
DROP FUNCTION procq.jobs_row_check(text, text, procq.job_status, integer, integer,
    integer, boolean, boolean, timestamptz, timestamptz, timestamptz, jsonb, timestamptz,
    text, bigint);
CREATE FUNCTION procq.jobs_row_check(
    task text, queue text, status procq.job_status, attempts integer,
    max_attempts integer, pending_parents integer, lock_blocked boolean,
    delayed boolean, started_at timestamptz, lease_expires_at timestamptz,
    finished_at timestamptz, result jsonb, scheduled_at timestamptz,
    lock text, cancelled_by bigint, queueing_lock text)
RETURNS boolean
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'procq_jobs_row_check';
REVOKE ALL ON FUNCTION procq.jobs_row_check(text, text, procq.job_status, integer, integer,
    integer, boolean, boolean, timestamptz, timestamptz, timestamptz, jsonb, timestamptz,
    text, bigint, text) FROM PUBLIC;
ALTER TABLE procq.jobs ADD CONSTRAINT jobs_row_valid CHECK (procq.jobs_row_check(
    task, queue, status, attempts, max_attempts, pending_parents,
    lock_blocked, delayed, started_at, lease_expires_at, finished_at,
    result, scheduled_at, lock, cancelled_by, queueing_lock));
ALTER TABLE procq.handlers
    ADD CONSTRAINT handlers_task_length CHECK (pg_catalog.length(task) <= 255);
-- issue 8, hostile: refuse a schema procq that a non-superuser owns (see
-- procq--1.1.sql; an installed 1.0 may be in one created beforehand)
------------------------------------------------------------------------------

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
-- issue 8, authz: the authorization model (src/authz.c), get_job, get_jobs,
-- wait_job, role-aware ready indexes, handler registration, monitoring
------------------------------------------------------------------------------

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
REVOKE ALL ON FUNCTION procq.get_job(bigint), procq.get_jobs(bigint[]),
    procq.wait_job(bigint, interval) FROM PUBLIC;

-- The ready indexes lead with deferred_by (a fetch reads only the roles the
-- caller acts as), and due jobs are taken from jobs_due_idx (src/fetch.c).
DROP INDEX procq.jobs_ready_idx, procq.jobs_ready_queue_idx, procq.jobs_ready_task_idx;
CREATE INDEX jobs_ready_idx ON procq.jobs (deferred_by, priority DESC, id)
    WHERE status = 'todo' AND pending_parents = 0 AND NOT lock_blocked AND NOT delayed
      AND priority IS NOT NULL;
CREATE INDEX jobs_ready_queue_idx ON procq.jobs (deferred_by, queue, priority DESC, id)
    WHERE status = 'todo' AND pending_parents = 0 AND NOT lock_blocked AND NOT delayed
      AND queue IS NOT NULL;
CREATE INDEX jobs_ready_task_idx ON procq.jobs (deferred_by, task, priority DESC, id)
    WHERE status = 'todo' AND pending_parents = 0 AND NOT lock_blocked AND NOT delayed
      AND task IS NOT NULL;
CREATE INDEX jobs_due_idx ON procq.jobs (deferred_by, scheduled_at)
    WHERE status = 'todo' AND delayed AND pending_parents = 0 AND NOT lock_blocked;

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
REVOKE ALL ON FUNCTION procq.handlers_check() FROM PUBLIC;
-- issue 9, skeleton: the columns of workflows and conditions on parents
------------------------------------------------------------------------------

-- A job of procq 1.0 waited for its parents' success and starts a workflow
-- of its own.
ALTER TABLE procq.jobs
    ADD COLUMN run_after text NOT NULL DEFAULT 'success',
    ADD COLUMN failed_parents integer NOT NULL DEFAULT 0,
    ADD COLUMN workflow_id bigint,
    ADD COLUMN step_key text;
UPDATE procq.jobs SET workflow_id = id;
ALTER TABLE procq.jobs ALTER COLUMN workflow_id SET NOT NULL;

ALTER TABLE procq.jobs DROP CONSTRAINT jobs_row_valid;
DROP FUNCTION procq.jobs_row_check(text, text, procq.job_status, integer, integer,
    integer, boolean, boolean, timestamptz, timestamptz, timestamptz, jsonb, timestamptz,
    text, bigint, text);
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
REVOKE ALL ON FUNCTION procq.jobs_row_check(text, text, procq.job_status, integer, integer,
    integer, boolean, boolean, timestamptz, timestamptz, timestamptz, jsonb, timestamptz,
    text, bigint, text, text, integer) FROM PUBLIC;
ALTER TABLE procq.jobs ADD CONSTRAINT jobs_row_valid CHECK (procq.jobs_row_check(
    task, queue, status, attempts, max_attempts, pending_parents,
    lock_blocked, delayed, started_at, lease_expires_at, finished_at,
    result, scheduled_at, lock, cancelled_by, queueing_lock, run_after,
    failed_parents));

CREATE FUNCTION procq.jobs_workflow_default()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'procq_jobs_workflow_default';

CREATE TRIGGER jobs_workflow_default
    BEFORE INSERT ON procq.jobs
    FOR EACH ROW
    WHEN (NEW.workflow_id IS NULL)
    EXECUTE FUNCTION procq.jobs_workflow_default();
REVOKE ALL ON FUNCTION procq.jobs_workflow_default() FROM PUBLIC;

-- defer and defer_jobs take run_after and workflow_id: the old declarations
-- go, and whoever could execute them can execute the new ones.
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

REVOKE ALL ON FUNCTION
    procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text, text, bigint),
    procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text, text, bigint)
FROM PUBLIC;

DO $$
DECLARE
    f record;
    g record;
BEGIN
    FOR f IN
        SELECT * FROM (VALUES
            ('procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text)',
             'procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text, text, bigint)'),
            ('procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text)',
             'procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text, text, bigint)'))
            AS v(old, new)
    LOOP
        FOR g IN
            SELECT a.grantee, a.is_grantable
            FROM pg_catalog.pg_proc p,
                 pg_catalog.aclexplode(p.proacl) AS a
            WHERE p.oid = f.old::pg_catalog.regprocedure
              AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
        LOOP
            EXECUTE pg_catalog.format(
                'GRANT EXECUTE ON FUNCTION %s TO %s%s', f.new,
                CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::pg_catalog.regrole::text END,
                CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END LOOP;
END
$$;
DROP FUNCTION procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text);
DROP FUNCTION procq.defer_jobs(text, jsonb[], text, integer, timestamptz, bigint[], integer, text);

-- issue 9, cond: failed_parents of the jobs of 1.0 (the new column starts
-- at 0): the number of each job's parents that failed or were cancelled,
-- so that a later retry of such a parent counts it down exactly.  Every
-- 1.0 job is a 'success' job, whose pending_parents (parents not
-- succeeded) is already right.  Parents deleted under 1.0 are not known
-- any more and are not counted.
UPDATE procq.jobs j SET failed_parents = c.n
  FROM (SELECT d.job_id, pg_catalog.count(*)::integer AS n
          FROM procq.job_dependencies d
          JOIN procq.jobs p ON p.id = d.depends_on
         WHERE p.status IN ('failed', 'cancelled')
         GROUP BY d.job_id) c
 WHERE j.id = c.job_id;

-- issue 9, add_dependencies: fan-out decided at run time.  A todo job can
-- get new parents, newer than itself too, so the CHECK depends_on < job_id
-- goes; procq.add_dependencies keeps the graph acyclic instead
-- (src/dependencies.c).
ALTER TABLE procq.job_dependencies DROP CONSTRAINT job_dependencies_parent_first;

CREATE FUNCTION procq.add_dependencies(job_id bigint, depends_on bigint[])
RETURNS integer
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_add_dependencies';
COMMENT ON FUNCTION procq.add_dependencies(bigint, bigint[]) IS
    'make a todo job wait for more parents (newer ones too); refuses a cycle; returns how many dependency rows were added';
REVOKE ALL ON FUNCTION procq.add_dependencies(bigint, bigint[]) FROM PUBLIC;

------------------------------------------------------------------------------
-- issue 9, workflows: workflow ids by the defer rule, jobs_workflow_idx,
-- procq.workflows, cancel_workflow, workflow_dot, parents; defer_workflow
-- and parent_results take workflow_id and by_key (C: src/workflows.c,
-- src/defer.c, src/workflow.c, src/lifecycle.c)
------------------------------------------------------------------------------

-- The jobs of 1.0 get the workflows that defer gives today, in one pass in
-- id order (a 1.0 parent always has a lower id than its child): a job with
-- parents that all share a workflow joins it, any other job keeps its own
-- id (set above).  1.0 did not record which jobs one defer_workflow call
-- inserted, so such a DAG with several roots (steps without parents)
-- becomes several workflows, one per root, plus one per job whose parents
-- lie in different ones.
DO $$
DECLARE
    j record;
BEGIN
    FOR j IN
        SELECT DISTINCT d.job_id FROM procq.job_dependencies d ORDER BY d.job_id
    LOOP
        UPDATE procq.jobs c SET workflow_id = s.workflow_id
        FROM (SELECT pg_catalog.min(p.workflow_id) AS workflow_id
              FROM procq.job_dependencies d JOIN procq.jobs p ON p.id = d.depends_on
              WHERE d.job_id = j.job_id
              HAVING pg_catalog.min(p.workflow_id) = pg_catalog.max(p.workflow_id)) s
        WHERE c.id = j.job_id AND c.workflow_id <> s.workflow_id;
    END LOOP;
END
$$;

-- The jobs of a workflow, in id order: procq.workflows, cancel_workflow and
-- workflow_dot read one range of it per workflow.
CREATE INDEX jobs_workflow_idx ON procq.jobs (workflow_id, id);

-- defer_workflow takes workflow_id and parent_results by_key: the old
-- declarations go, and whoever could execute them can execute the new ones.
CREATE FUNCTION procq.defer_workflow(steps jsonb, workflow_id bigint DEFAULT NULL)
RETURNS TABLE (key text, job_id bigint)
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_defer_workflow';
COMMENT ON FUNCTION procq.defer_workflow(jsonb, bigint) IS
    'insert a DAG of jobs in one call, as one workflow (a new one, or workflow_id); steps name their parents by key or job id';

CREATE FUNCTION procq.parent_results(job_id bigint, by_key boolean DEFAULT false)
RETURNS jsonb
LANGUAGE C STABLE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_parent_results';
COMMENT ON FUNCTION procq.parent_results(bigint, boolean) IS
    'the results of the job''s parents, keyed by parent id (by_key: by their step_key)';

REVOKE ALL ON FUNCTION
    procq.defer_workflow(jsonb, bigint),
    procq.parent_results(bigint, boolean)
FROM PUBLIC;

DO $$
DECLARE
    f record;
    g record;
BEGIN
    FOR f IN
        SELECT * FROM (VALUES
            ('procq.defer_workflow(jsonb)', 'procq.defer_workflow(jsonb, bigint)'),
            ('procq.parent_results(bigint)', 'procq.parent_results(bigint, boolean)'))
            AS v(old, new)
    LOOP
        FOR g IN
            SELECT a.grantee, a.is_grantable
            FROM pg_catalog.pg_proc p,
                 pg_catalog.aclexplode(p.proacl) AS a
            WHERE p.oid = f.old::pg_catalog.regprocedure
              AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
        LOOP
            EXECUTE pg_catalog.format(
                'GRANT EXECUTE ON FUNCTION %s TO %s%s', f.new,
                CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::pg_catalog.regrole::text END,
                CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END LOOP;
END
$$;
DROP FUNCTION procq.defer_workflow(jsonb);
DROP FUNCTION procq.parent_results(bigint);

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

REVOKE ALL ON TABLE procq.workflows FROM PUBLIC;
REVOKE ALL ON FUNCTION
    procq.cancel_workflow(bigint, boolean),
    procq.workflow_dot(bigint),
    procq.parents(bigint)
FROM PUBLIC;

-- issue 9, review fixes: the comments of pending_parents and job_dependencies
-- follow run_after (they still said 'succeeded' only).
COMMENT ON COLUMN procq.jobs.pending_parents IS 'number of parents (job_dependencies.depends_on) the job still waits for: for run_after ''success'' those that have not succeeded, for ''completion'' and ''failure'' those that are not final (todo or doing)';
COMMENT ON TABLE procq.job_dependencies IS 'job_id depends on depends_on: it runs once its parents have done what its run_after asks (''success'': all succeeded; ''completion'': all final; ''failure'': all final and one did not succeed)';

-- issue 10, stats: release_job, queue_stats, metrics
CREATE FUNCTION procq.release_job(job_id bigint, attempt integer DEFAULT NULL)
RETURNS procq.job_status
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_release_job';
COMMENT ON FUNCTION procq.release_job(bigint, integer) IS
    'hand a doing job (in attempt, if given) back to todo at once, its attempt not counted; returns the status it is left in: todo, or failed when another todo job took its queueing_lock';

REVOKE ALL ON FUNCTION procq.release_job(bigint, integer) FROM PUBLIC;

-- issue 10, events: procq.job_events, procq.job_history, the triggers that
-- write and forget events (see procq--1.1.sql for the why).
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

-- issue 10, events: a job's history, oldest first (C: src/events.c); who may
-- see the job (procq.get_job) may see its history.
CREATE FUNCTION procq.job_history(job_id bigint)
RETURNS SETOF procq.job_events
LANGUAGE C STABLE PARALLEL UNSAFE ROWS 10
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_job_history';
COMMENT ON FUNCTION procq.job_history(bigint) IS
    'the job''s events (procq.job_events), oldest first; P0002 when there is no such job, 42501 when it is another role''s';

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

REVOKE ALL ON TABLE procq.job_events FROM PUBLIC;
REVOKE ALL ON SEQUENCE procq.job_events_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION
    procq.job_history(bigint),
    procq.job_events_record(),
    procq.job_events_forget()
FROM PUBLIC;

-- issue 10, cron: procq.workflow_ticks and procq.defer_workflow_once, a
-- workflow deferred at most once per tick of a schedule (pg_cron; C:
-- src/ticks.c).
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

CREATE FUNCTION procq.defer_workflow_once(tick text, steps jsonb, workflow_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'procq_defer_workflow_once';
COMMENT ON FUNCTION procq.defer_workflow_once(text, jsonb, bigint) IS
    'defer_workflow, unless the calling role deferred this tick before: returns the workflow id, or NULL when the tick was deferred already';

REVOKE ALL ON TABLE procq.workflow_ticks FROM PUBLIC;
REVOKE ALL ON FUNCTION procq.defer_workflow_once(text, jsonb, bigint) FROM PUBLIC;

-- issue 10, stats: the live jobs (todo, doing) per queue, with what
-- procq.queue_stats tells apart, so that it reads them from this index and
-- never the finished jobs.
CREATE INDEX jobs_live_idx ON procq.jobs (queue)
    INCLUDE (status, pending_parents, lock_blocked, delayed, scheduled_at, created_at)
    WHERE status IN ('todo', 'doing');

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

-- the final jobs of 1.0 are counted (with the jobs locked by the ALTER TABLEs
-- above, no job changes meanwhile)
INSERT INTO procq.queue_counts (queue, succeeded, failed, cancelled,
                                succeeded_total, failed_total, cancelled_total)
    SELECT j.queue,
           pg_catalog.count(*) FILTER (WHERE j.status = 'succeeded'),
           pg_catalog.count(*) FILTER (WHERE j.status = 'failed'),
           pg_catalog.count(*) FILTER (WHERE j.status = 'cancelled'),
           pg_catalog.count(*) FILTER (WHERE j.status = 'succeeded'),
           pg_catalog.count(*) FILTER (WHERE j.status = 'failed'),
           pg_catalog.count(*) FILTER (WHERE j.status = 'cancelled')
    FROM procq.jobs j
    WHERE j.status IN ('succeeded', 'failed', 'cancelled')
    GROUP BY j.queue;

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

REVOKE ALL ON TABLE procq.queue_counts, procq.queue_stats FROM PUBLIC;
REVOKE ALL ON FUNCTION procq.metrics(), procq.jobs_final_inserted(), procq.jobs_truncated()
FROM PUBLIC;
