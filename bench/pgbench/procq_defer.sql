-- One procq.defer call per transaction.
SELECT procq.defer('bench_defer', '{"i": 1}');
