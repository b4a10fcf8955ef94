-- procq.defer_workflow of 10,000 independent steps, one call.
SELECT count(*) FROM procq.defer_workflow((
    SELECT jsonb_agg(jsonb_build_object('key', 'k' || i, 'task', 'bench_bulk', 'args', jsonb_build_object('i', i)))
      FROM generate_series(1, 10000) AS i));
