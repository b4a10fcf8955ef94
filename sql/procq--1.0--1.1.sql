-- procq 1.0 -> 1.1 (ALTER EXTENSION procq UPDATE TO '1.1').
--
-- Brings an installed 1.0 to the catalog of a fresh 1.1 install
-- (procq--1.1.sql); test/t/004_upgrade.pl checks that both are equal and
-- that the jobs survive.  Changes are grouped by the feature that needs them.

\echo Use "ALTER EXTENSION procq UPDATE TO '1.1'" to load this file. \quit

-- issue 7, bookkeeping: statement-level bookkeeping triggers over transition
-- tables; trigger functions without a SET clause (they pin search_path
-- themselves, only when they run SQL).
ALTER FUNCTION procq.jobs_status_changed() RESET search_path;
ALTER FUNCTION procq.jobs_status_normalize() RESET search_path;
ALTER FUNCTION procq.jobs_deleted() RESET search_path;
ALTER FUNCTION procq.dependency_deleted() RESET search_path;

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
