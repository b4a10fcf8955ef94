-- The steady state's producer: one job per transaction, run by the workers.
SELECT procq.defer('steady', '{"i": 1}');
