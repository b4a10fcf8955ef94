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
