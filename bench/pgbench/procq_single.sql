-- An external worker, one job at a time: fetch_job (commit), finish_job
-- (commit).
SELECT coalesce(max(id), 0) AS job FROM procq.fetch_job(worker => 'bench') \gset
\if :job > 0
SELECT procq.finish_job(:job, 'succeeded');
\endif
