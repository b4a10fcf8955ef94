-- One multi-row INSERT of 10,000 jobs into the minimal table.
INSERT INTO floor_jobs (args) SELECT jsonb_build_object('i', i) FROM generate_series(1, 10000) AS i;
