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
