-- An external worker, one job at a time: fetch_job (commit), finish_job
-- (commit).  One pgbench transaction = one job.
SELECT id AS job FROM procq.fetch_job(worker => 'bench') \gset
SELECT procq.finish_job(:job, 'succeeded');
