-- 10,000 procq.defer calls in one statement.
SELECT count(procq.defer('bench_bulk', jsonb_build_object('i', i))) FROM generate_series(1, 10000) AS i;
