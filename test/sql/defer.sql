-- defer.sql: procq.defer stores a job as given (defaults, named arguments,
-- NULL args), and procq.fetch_job hands out only ready jobs: due ones, best
-- priority first then lowest id, from the queues asked for; it marks the
-- job doing, stamps the worker and counts the attempt.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'

-- Defaults: every optional argument left out.
SELECT procq.defer('send_email') AS id;
\x on
SELECT id, queue, task, args, status, priority, scheduled_at, attempts,
       max_attempts, lock, queueing_lock, result, error, started_at,
       finished_at, worker, pending_parents, lock_blocked, delayed,
       lease_expires_at, cancelled_by, created_at IS NOT NULL AS has_created_at
  FROM procq.jobs WHERE id = 1;
\x off

-- Named arguments, in any order, land in their own columns.
SELECT procq.defer(queueing_lock => 'resize-42', lock => 'image-42',
                   max_attempts => 3, priority => 5, queue => 'images',
                   args => '{"id": 42, "sizes": [64, 128]}',
                   task => 'resize') AS id;
\x on
SELECT id, queue, task, args, status, priority, scheduled_at, attempts,
       max_attempts, lock, queueing_lock, pending_parents, lock_blocked, delayed
  FROM procq.jobs WHERE id = 2;
\x off

-- NULL args, positional or named, is stored as the empty object.
SELECT procq.defer('a', NULL) AS id;
SELECT procq.defer('b', args => NULL) AS id;
SELECT id, task, args FROM procq.jobs WHERE id IN (3, 4) ORDER BY id;

-- Scheduled jobs: one due a second ago, one due in an hour.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('later', scheduled_at => now() + interval '1 hour') AS id;
SELECT procq.defer('due', scheduled_at => now() - interval '1 second') AS id;
SELECT id, task, scheduled_at > now() AS in_future, delayed
  FROM procq.jobs ORDER BY id;
-- Only the due job is handed out, although the later one has a lower id.
SELECT id, task, status FROM procq.fetch_job();
SELECT id, task, status FROM procq.fetch_job();
SELECT id, task, status FROM procq.jobs ORDER BY id;
-- Once its time has come (moved into the past here), fetch_job notices it
-- and hands it out.
UPDATE procq.jobs SET scheduled_at = now() - interval '1 minute' WHERE id = 1;
SELECT id, task, status FROM procq.fetch_job();
SELECT id, status, delayed FROM procq.jobs ORDER BY id;

-- Priority: higher first; equal priorities in id order; negative allowed.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('p0-first') AS id;
SELECT procq.defer('p10-first', priority => 10) AS id;
SELECT procq.defer('p-5', priority => -5) AS id;
SELECT procq.defer('p10-second', priority => 10) AS id;
SELECT procq.defer('p0-second') AS id;
SELECT id, task, priority FROM procq.fetch_job();
SELECT id, task, priority FROM procq.fetch_job();
SELECT id, task, priority FROM procq.fetch_job();
SELECT id, task, priority FROM procq.fetch_job();
SELECT id, task, priority FROM procq.fetch_job();
-- nothing left
SELECT id, task, priority FROM procq.fetch_job();

-- Queue filter: NULL = every queue, one queue, several, none ('{}').
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('in-a', queue => 'a') AS id;
SELECT procq.defer('in-b', queue => 'b') AS id;
SELECT procq.defer('in-c', queue => 'c') AS id;
SELECT procq.defer('in-default') AS id;
SELECT procq.defer('in-b-again', queue => 'b') AS id;
-- an empty list fetches nothing although five jobs are ready
SELECT id, queue FROM procq.fetch_job('{}');
SELECT id, queue FROM procq.fetch_job(ARRAY['b']);
SELECT id, queue FROM procq.fetch_job(ARRAY['b']);
SELECT id, queue FROM procq.fetch_job(ARRAY['b']);
-- a queue nobody deferred into
SELECT id, queue FROM procq.fetch_job(ARRAY['nosuchqueue']);
SELECT id, queue FROM procq.fetch_job(ARRAY['c', 'default']);
SELECT id, queue FROM procq.fetch_job(queues => ARRAY['c', 'default']);
SELECT id, queue FROM procq.fetch_job(ARRAY['c', 'default']);
SELECT id, queue FROM procq.fetch_job(NULL);
SELECT id, queue, status FROM procq.jobs ORDER BY id;

-- Fetching stamps the job: doing, one attempt, started, leased, worker
-- given or 'backend <pid>' by default.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SELECT procq.defer('named-worker') AS id;
SELECT procq.defer('default-worker') AS id;
SELECT id, status, attempts, worker, started_at IS NOT NULL AS started,
       lease_expires_at > now() AS leased
  FROM procq.fetch_job(worker => 'worker-1');
SELECT id, status, attempts, worker = 'backend ' || pg_backend_pid() AS worker_is_backend,
       started_at IS NOT NULL AS started, lease_expires_at > now() AS leased
  FROM procq.fetch_job();
SELECT id, status, attempts, worker, finished_at IS NULL AS not_finished
  FROM procq.jobs WHERE id = 1;

-- Attempts: each fetch counts one; a failure with attempts left goes back
-- to todo, the last one ends failed.
TRUNCATE procq.jobs, procq.job_dependencies RESTART IDENTITY;
SET procq.retry_delay = 0;
SELECT procq.defer('flaky', max_attempts => 3) AS id;
SELECT id, attempts FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'first');
SELECT id, status, attempts, error FROM procq.jobs;
SELECT id, attempts FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'second');
SELECT id, status, attempts, error FROM procq.jobs;
SELECT id, attempts FROM procq.fetch_job();
SELECT procq.finish_job(1, 'failed', error => 'third');
SELECT id, status, attempts, error, finished_at IS NOT NULL AS finished FROM procq.jobs;
-- a failed job is never handed out again
SELECT id, attempts FROM procq.fetch_job();

-- A success ends the job with its result.
SELECT procq.defer('ok') AS id;
SELECT id, attempts FROM procq.fetch_job();
SELECT procq.finish_job(2, 'succeeded', '{"sent": true}');
SELECT id, status, attempts, result, error, finished_at IS NOT NULL AS finished,
       lease_expires_at
  FROM procq.jobs WHERE id = 2;
