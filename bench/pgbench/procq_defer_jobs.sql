-- procq.defer_jobs of 10,000 jobs, one call.
SELECT count(*) FROM procq.defer_jobs('bench_bulk', ARRAY(SELECT jsonb_build_object('i', i) FROM generate_series(1, 10000) AS i));
