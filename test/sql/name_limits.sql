-- name_limits.sql (issue 8, bounds): task, queue, lock and queueing_lock
-- (and a handler's task) are at most 255 characters.  A longer name is
-- refused when it is deferred (22001, naming the argument and the limit),
-- by defer, defer_jobs, each defer_workflow step and register_handler, and
-- changes nothing; a CHECK constraint refuses it in the tables too.
--
-- Before the limits, a queue of 8,000 characters or a task of 3,000 was
-- accepted by defer and failed only later, in the transaction of whoever
-- finished the job's parent (NOTIFY payload too long, index row too
-- large for the ready indexes): anyone could make another role's job
-- impossible to finish.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
RESET client_min_messages;
\pset null '(null)'
SET procq.retry_delay = 0;

CREATE TEMP VIEW counts AS
    SELECT (SELECT count(*) FROM procq.jobs) AS jobs,
           (SELECT count(*) FROM procq.job_dependencies) AS deps,
           (SELECT count(*) FROM procq.handlers) AS handlers,
           (SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM procq.jobs) AS statuses;

-- A name that does not compress: 3,200 characters of hex digits.
CREATE TEMP TABLE names AS
    SELECT (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 100) i) AS hex;

-- The parent whose finish the long names used to break.
SELECT procq.defer('parent') AS parent \gset

------------------------------------------------------------------------
-- defer: the original failures are refused at defer time
SELECT procq.defer('child', queue => repeat('q', 8000), depends_on => ARRAY[:parent]);
SELECT procq.defer(left(hex, 3000), depends_on => ARRAY[:parent]) FROM names;
SELECT procq.defer('child', lock => left(hex, 3000), depends_on => ARRAY[:parent]) FROM names;
SELECT procq.defer('child', queueing_lock => left(hex, 3000), depends_on => ARRAY[:parent]) FROM names;
TABLE counts;
-- ... and the parent finishes as it should
SELECT id FROM procq.fetch_job();
SELECT procq.finish_job(:parent, 'succeeded');
TABLE counts;

-- 256 is one too many, for each name; the limit counts characters, not
-- bytes: 255 four-byte characters (1,020 bytes) are fine, 256 are not.
SELECT procq.defer(repeat('t', 256));
SELECT procq.defer('t', queue => repeat('q', 256));
SELECT procq.defer('t', lock => repeat('l', 256));
SELECT procq.defer('t', queueing_lock => repeat('k', 256));
SELECT procq.defer(repeat(U&'\+01F600', 256));
TABLE counts;

-- 255 of each is fine, also when the job becomes ready through its
-- parent, moves along a lock queue and is retried.
SELECT procq.defer('p2') AS p2 \gset
SELECT procq.defer(repeat(U&'\+01F600', 255), queue => repeat(U&'\+01F601', 255),
                   lock => repeat(U&'\+01F602', 255),
                   queueing_lock => repeat(U&'\+01F603', 255),
                   depends_on => ARRAY[:p2], max_attempts => 2) AS long1 \gset
SELECT procq.defer(repeat(U&'\+01F600', 255), queue => repeat(U&'\+01F601', 255),
                   lock => repeat(U&'\+01F602', 255)) AS long2 \gset
SELECT id = :p2 AS p2_first FROM procq.fetch_job(ARRAY['default']);
SELECT procq.finish_job(:p2, 'succeeded');
SELECT id = :long1 AS long1_ready, length(task), octet_length(task), length(queue), length(lock),
       length(queueing_lock)
FROM procq.fetch_job(ARRAY[repeat(U&'\+01F601', 255)]);
SELECT procq.finish_job(:long1, 'failed');
SELECT status, attempts FROM procq.jobs WHERE id = :long1;
SELECT id FROM procq.fetch_job(ARRAY[repeat(U&'\+01F601', 255)]);
SELECT procq.finish_job(:long1, 'failed');
SELECT procq.retry_job(:long1);
SELECT id = :long1 AS long1, status, lock_blocked FROM procq.jobs WHERE id IN (:long1, :long2) ORDER BY id;
SELECT id = :long1 AS long1_again FROM procq.fetch_job(ARRAY[repeat(U&'\+01F601', 255)]);
SELECT procq.finish_job(:long1, 'succeeded');
SELECT id = :long2 AS long2_next FROM procq.fetch_job(ARRAY[repeat(U&'\+01F601', 255)]);
SELECT procq.finish_job(:long2, 'succeeded');
DELETE FROM procq.jobs WHERE id > :parent;
TABLE counts;

------------------------------------------------------------------------
-- defer_jobs
SELECT procq.defer_jobs(repeat('t', 256), ARRAY['{}'::jsonb]);
SELECT procq.defer_jobs('t', ARRAY['{}'::jsonb], queue => repeat('q', 256));
SELECT procq.defer_jobs('t', ARRAY['{}'::jsonb], lock => repeat('l', 256));
TABLE counts;

------------------------------------------------------------------------
-- defer_workflow: the step is named, nothing of the workflow is inserted
SELECT * FROM procq.defer_workflow(jsonb_build_array(
    jsonb_build_object('key', 'a', 'task', 't'),
    jsonb_build_object('key', 'b', 'task', repeat('t', 256))));
SELECT * FROM procq.defer_workflow(jsonb_build_array(
    jsonb_build_object('key', 'a', 'task', 't'),
    jsonb_build_object('key', 'b', 'task', 't', 'queue', repeat('q', 8000))));
SELECT * FROM procq.defer_workflow(jsonb_build_array(
    jsonb_build_object('key', 'a', 'task', 't', 'lock', repeat('l', 256))));
SELECT * FROM procq.defer_workflow(jsonb_build_array(
    jsonb_build_object('key', 'a', 'task', 't', 'queueing_lock', repeat('k', 256))));
TABLE counts;

------------------------------------------------------------------------
-- register_handler
SELECT procq.register_handler(repeat('t', 256), 'sql', 'SELECT 1');
SELECT procq.register_handler(repeat('t', 255), 'sql', 'SELECT 1');
SELECT length(task) FROM procq.handlers;
SELECT procq.unregister_handler(repeat('t', 255));
TABLE counts;

------------------------------------------------------------------------
-- The tables refuse them too (a DBA's INSERT or UPDATE).
INSERT INTO procq.jobs (task) VALUES (repeat('t', 256));
INSERT INTO procq.jobs (task, queue) VALUES ('t', repeat('q', 256));
INSERT INTO procq.jobs (task, lock) VALUES ('t', repeat('l', 256));
INSERT INTO procq.jobs (task, queueing_lock) VALUES ('t', repeat('k', 256));
UPDATE procq.jobs SET queue = repeat('q', 256) WHERE id = :parent;
\set VERBOSITY terse
INSERT INTO procq.handlers (task, kind, command, registered_by)
    VALUES (repeat('t', 256), 'sql', 'SELECT 1', 'postgres');
\set VERBOSITY default
TABLE counts;
