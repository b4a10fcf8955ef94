-- workflow.sql: defer_workflow inserts a DAG of jobs in one call.
--  - It returns each step's key and job id in the order of the input.
--  - Parents get lower ids than their children, whatever the input order.
--  - depends_on names steps by key and existing jobs by id.
--  - Run to completion, the jobs become fetchable wave by wave, each only
--    after all its parents succeeded.
--  - Step options (args, queue, priority, lock, queueing_lock,
--    max_attempts, scheduled_at) reach the jobs; left out, defer's defaults.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

-- An existing job the workflow will depend on, in a queue of its own.
SELECT procq.defer('setup', queue => 'manual') AS id;

-- extract -> transform-1..3 -> load -> report (report also waits for job 1).
-- The input lists load first and report before the transforms.
CREATE TEMP TABLE wf AS
SELECT * FROM procq.defer_workflow('[
    {"key": "load", "task": "load",
     "depends_on": ["transform-1", "transform-2", "transform-3"]},
    {"key": "extract", "task": "extract", "args": {"source": "s3://bucket/day"}},
    {"key": "report", "task": "report", "depends_on": ["load", 1]},
    {"key": "transform-1", "task": "transform", "args": {"part": 1}, "depends_on": ["extract"]},
    {"key": "transform-2", "task": "transform", "args": {"part": 2}, "depends_on": ["extract"]},
    {"key": "transform-3", "task": "transform", "args": {"part": 3}, "depends_on": ["extract", "extract"]}
]') WITH ORDINALITY AS w(key, job_id, n);
-- keys come back in input order
SELECT n, key, job_id FROM wf ORDER BY n;
-- every parent has a lower id than its child
SELECT c.key AS child, p.key AS parent, d.job_id, d.depends_on
  FROM procq.job_dependencies d
  LEFT JOIN wf c ON c.job_id = d.job_id
  LEFT JOIN wf p ON p.job_id = d.depends_on
 ORDER BY d.job_id, d.depends_on;
SELECT count(*) AS parents_after_children
  FROM procq.job_dependencies WHERE depends_on > job_id;
SELECT w.key, j.task, j.args, j.status, j.pending_parents
  FROM wf w JOIN procq.jobs j ON j.id = w.job_id ORDER BY j.id;

-- Run it: each wave fetches every job that is fetchable now, then finishes
-- them all as succeeded; it returns the keys (or tasks) it ran.
CREATE FUNCTION pg_temp.wave(queues text[] DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    job procq.jobs;
    taken bigint[] := '{}';
    names text[] := '{}';
    id bigint;
BEGIN
    LOOP
        SELECT * INTO job FROM procq.fetch_job(queues);
        EXIT WHEN job.id IS NULL;
        taken := taken || job.id;
        names := names || coalesce((SELECT w.key FROM wf w WHERE w.job_id = job.id), job.task);
    END LOOP;
    FOREACH id IN ARRAY taken LOOP
        PERFORM procq.finish_job(id, 'succeeded', to_jsonb('result of job ' || id));
    END LOOP;
    RETURN array_to_string(names, ', ');
END $$;

SELECT pg_temp.wave(ARRAY['default']) AS wave_1;
SELECT pg_temp.wave(ARRAY['default']) AS wave_2;
SELECT procq.parent_results(6) AS load_sees;
SELECT pg_temp.wave(ARRAY['default']) AS wave_3;
-- report still waits for job 1
SELECT pg_temp.wave(ARRAY['default']) AS wave_4;
SELECT id, status, pending_parents FROM procq.jobs WHERE id = 7;
SELECT pg_temp.wave(ARRAY['manual']) AS setup;
SELECT pg_temp.wave(ARRAY['default']) AS wave_5;
SELECT procq.parent_results(7) AS report_sees;
SELECT status, count(*) FROM procq.jobs GROUP BY 1 ORDER BY 1;

------------------------------------------------------------------------
-- Options reach the jobs; steps that leave them out get defer's defaults.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT * FROM procq.defer_workflow('[
    {"key": "resize", "task": "resize", "args": {"width": 64}, "queue": "images",
     "priority": 7, "lock": "image-9", "queueing_lock": "resize-9",
     "max_attempts": 4, "scheduled_at": "2999-01-01 00:00:00+00"},
    {"key": "notify", "task": "notify", "depends_on": ["resize"]},
    {"key": "nulls", "task": "nulls", "args": null, "lock": null,
     "queueing_lock": null, "scheduled_at": null, "depends_on": null}
]');
\x on
SELECT id, task, args, queue, priority, lock, queueing_lock, max_attempts,
       scheduled_at = '2999-01-01 00:00:00+00' AS scheduled_2999, delayed,
       status, pending_parents
  FROM procq.jobs ORDER BY id;
\x off
-- the scheduled step is not fetchable yet, nor its child
SELECT id, task FROM procq.fetch_job(ARRAY['images', 'default']);
SELECT id, task FROM procq.fetch_job(ARRAY['images', 'default']);

------------------------------------------------------------------------
-- Steps depending on existing jobs get what defer gives: a succeeded job
-- satisfies, a failed one cancels the step (and the steps after it).
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('done') AS id;
SELECT procq.defer('broken') AS id;
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(1, 'succeeded');
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(2, 'failed');
SELECT * FROM procq.defer_workflow('[
    {"key": "after-done", "task": "t", "depends_on": [1]},
    {"key": "after-broken", "task": "t", "depends_on": [2]},
    {"key": "after-after-broken", "task": "t", "depends_on": ["after-broken"]}
]');
SELECT id, status, pending_parents, cancelled_by, error FROM procq.jobs ORDER BY id;
