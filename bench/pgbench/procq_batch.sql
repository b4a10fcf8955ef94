-- An external worker, 100 jobs at a time: fetch_jobs(100) (commit),
-- finish_jobs of all of them (commit).
SELECT count(*) AS n, coalesce(array_agg(id), '{}')::text AS ids FROM procq.fetch_jobs(100, worker => 'bench') \gset
\if :n > 0
SELECT count(*) FROM procq.finish_jobs(CAST(:ids AS bigint[]), 'succeeded');
\endif
