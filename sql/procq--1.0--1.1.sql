-- procq 1.0 -> 1.1 (ALTER EXTENSION procq UPDATE TO '1.1').
--
-- Brings an installed 1.0 to the catalog of a fresh 1.1 install
-- (procq--1.1.sql); test/t/004_upgrade.pl checks that both are equal and
-- that the jobs survive.  Changes are grouped by the feature that needs them.

\echo Use "ALTER EXTENSION procq UPDATE TO '1.1'" to load this file. \quit

------------------------------------------------------------------------------
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
