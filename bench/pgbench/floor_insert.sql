-- A plain INSERT of one job into the minimal table.
INSERT INTO floor_jobs (args) VALUES ('{"i": 1}');
