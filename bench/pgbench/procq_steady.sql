-- The steady state's producer: 10 jobs per transaction (10 defer calls in
-- one statement; single-job commits could not reach the rate on a small
-- machine with fsync on), run by the workers.
SELECT count(procq.defer('steady', jsonb_build_object('i', i))) FROM generate_series(1, 10) AS i;
