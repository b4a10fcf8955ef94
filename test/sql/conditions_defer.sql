-- conditions_defer.sql (issue 9): run_after at defer time.  Parents that
-- are already final are judged at once by the same rules (defer,
-- defer_jobs, defer_workflow steps); a bad run_after and a 'failure' job
-- without any parent are refused with 22023, and nothing is inserted.
-- Every step checks the bookkeeping invariant (view invariant: no row).
\i test/sql/include/conditions_setup.sql

-- 1 succeeded, 2 failed, 3 cancelled, 4 doing, 5 todo
SELECT procq.defer('ok'), procq.defer('bad'), procq.defer('gone'),
       procq.defer('busy'), procq.defer('later');
SELECT pg_temp.run('ok'), pg_temp.run('bad', 'failed'), procq.cancel_job(3);
SELECT id FROM procq.fetch_job(tasks => '{busy}');

------------------------------------------------------------------------
-- defer, one parent of each kind, per run_after
SELECT procq.defer('s-ok', depends_on => '{1}') AS s_ok,                          -- 6 ready
       procq.defer('s-bad', depends_on => '{1,2}') AS s_bad,                      -- 7 cancelled (2)
       procq.defer('s-gone-bad', depends_on => '{3,2}') AS s_two,                 -- 8 cancelled (2, the lowest)
       procq.defer('c-ok', depends_on => '{1}', run_after => 'completion') AS c_ok,      -- 9 ready
       procq.defer('c-bad', depends_on => '{2,3}', run_after => 'completion') AS c_bad,  -- 10 ready
       procq.defer('c-busy', depends_on => '{2,4}', run_after => 'completion') AS c_busy,-- 11 waits
       procq.defer('f-ok', depends_on => '{1}', run_after => 'failure') AS f_ok,         -- 12 cancelled
       procq.defer('f-bad', depends_on => '{1,2}', run_after => 'failure') AS f_bad,     -- 13 ready
       procq.defer('f-later', depends_on => '{1,5}', run_after => 'failure') AS f_later; -- 14 waits
TABLE state;
TABLE invariant;
-- what the waiting ones do next: 4 and 5 succeed; 11 is ready, 14 is
-- cancelled (all its parents succeeded)
SELECT procq.finish_job(4, 'succeeded'), pg_temp.run('later');
SELECT id, task, status, pending_parents, failed_parents, error FROM procq.jobs
 WHERE id IN (11, 14) ORDER BY id;
TABLE invariant;

-- a 'completion' job without parents is ready at once
SELECT procq.defer('c-alone', run_after => 'completion') AS c_alone;
SELECT id, status, pending_parents FROM procq.fetch_job(tasks => '{c-alone}');

------------------------------------------------------------------------
-- bad input: nothing is inserted
SELECT count(*) AS jobs_before FROM procq.jobs \gset
SELECT procq.defer('x', run_after => 'always');
SELECT procq.defer('x', run_after => '');
SELECT procq.defer('x', run_after => NULL);
SELECT procq.defer('alert', run_after => 'failure');
SELECT procq.defer('alert', depends_on => '{}', run_after => 'failure');
SELECT procq.defer_jobs('alert', ARRAY['{}', '{}']::jsonb[], run_after => 'failure');
SELECT procq.defer_jobs('x', ARRAY['{}']::jsonb[], run_after => 'sometimes');
SELECT count(*) = :jobs_before AS nothing_inserted FROM procq.jobs;

------------------------------------------------------------------------
-- defer_jobs: the same judgement for each job of the batch
SELECT procq.defer_jobs('fan-c', ARRAY['{"n":1}', '{"n":2}']::jsonb[],
                        depends_on => '{2,4}', run_after => 'completion');
SELECT procq.defer_jobs('fan-f', ARRAY['{"n":1}', '{"n":2}']::jsonb[],
                        depends_on => '{1,4}', run_after => 'failure');
SELECT procq.defer_jobs('fan-f2', ARRAY['{"n":1}']::jsonb[],
                        depends_on => '{2,5}', run_after => 'failure');
SELECT procq.defer_jobs('fan-s', ARRAY['{"n":1}']::jsonb[], depends_on => '{1,3}');
SELECT * FROM state WHERE task LIKE 'fan-%';
TABLE invariant;

------------------------------------------------------------------------
-- defer_workflow: steps with run_after, judged against existing parents
-- and against earlier steps (a step inserted cancelled counts as a
-- cancelled parent of later ones)
SELECT procq.defer_workflow('[
  {"key": "fetch", "task": "wf-fetch", "depends_on": [1]},
  {"key": "check", "task": "wf-check", "depends_on": [2], "run_after": "failure"},
  {"key": "doomed", "task": "wf-doomed", "depends_on": [1], "run_after": "failure"},
  {"key": "after-doomed", "task": "wf-after-doomed", "depends_on": ["doomed"]},
  {"key": "tidy", "task": "wf-tidy", "depends_on": ["doomed", "fetch", 4], "run_after": "completion"},
  {"key": "mind", "task": "wf-mind", "depends_on": ["after-doomed", "check"], "run_after": "failure"}
]'::jsonb) AS wf;
SELECT id, task, run_after, status, pending, failed, cancelled_by, error, ready
  FROM state WHERE task LIKE 'wf-%';
TABLE invariant;
-- a parentless 'failure' step is refused (22023, with its step), and
-- nothing of the workflow is inserted; so is a bad run_after
SELECT count(*) AS jobs_before FROM procq.jobs \gset
\set VERBOSITY default
SELECT procq.defer_workflow('[
  {"key": "a", "task": "a"},
  {"key": "alert", "task": "alert", "run_after": "failure"}
]'::jsonb);
SELECT procq.defer_workflow('[
  {"key": "a", "task": "a"},
  {"key": "b", "task": "b", "depends_on": ["a"], "run_after": "whenever"}
]'::jsonb);
SELECT count(*) = :jobs_before AS nothing_inserted FROM procq.jobs;
