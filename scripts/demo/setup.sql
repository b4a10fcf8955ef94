-- setup.sql: the demo's tables and handlers (scripts/demo.sh).
--
-- Shell handlers run a program in the server's OS account (procq.enable_shell
-- = on, superuser only); SQL handlers run one statement as the role that
-- deferred the job, with $1 = the job's args (jsonb) and $2 = its id.

CREATE EXTENSION procq;

CREATE SCHEMA demo;
CREATE TABLE demo.orders_clean (part int PRIMARY KEY, rows int NOT NULL, job_id bigint NOT NULL);
CREATE TABLE demo.loads (target text, rows int NOT NULL, parts int NOT NULL, job_id bigint NOT NULL);
CREATE TABLE demo.alerts (channel text NOT NULL, failed text NOT NULL, job_id bigint NOT NULL);
CREATE TABLE demo.cleanups (dir text NOT NULL, parents text NOT NULL, job_id bigint NOT NULL);

-- extract: a program that takes a moment and prints JSON, which becomes the
-- job's result.  The job's args are in $PROCQ_ARGS (and on stdin).
SELECT procq.register_handler('extract', 'shell',
    $c$/bin/sh -c 'sleep 1; echo "{\"rows\": 1200, \"args\": $PROCQ_ARGS}"'$c$);

-- transform: one statement that reads the extract's result through
-- procq.parent_results($2), writes its share of the rows and returns JSON.
SELECT procq.register_handler('transform', 'sql', $c$
    INSERT INTO demo.orders_clean (part, rows, job_id)
    SELECT ($1->>'part')::int, (p.value->>'rows')::int / 3, $2
      FROM jsonb_each(procq.parent_results($2)) AS p, pg_sleep(0.5)
    RETURNING jsonb_build_object('part', part, 'rows', rows)$c$);

-- load: sums what the three transforms returned.
SELECT procq.register_handler('load', 'sql', $c$
    INSERT INTO demo.loads (target, rows, parts, job_id)
    SELECT $1->>'table', sum((p.value->>'rows')::int), count(*), $2
      FROM jsonb_each(procq.parent_results($2)) AS p
    RETURNING jsonb_build_object('table', target, 'rows', rows, 'parts', parts)$c$);

-- validate: a program that fails: exit status 1, a message on stderr.
SELECT procq.register_handler('validate', 'shell',
    $c$/bin/sh -c 'sleep 0.5; echo "3 rows without a customer id" >&2; exit 1'$c$);

-- publish and notify never run: validate fails, so they are cancelled.
SELECT procq.register_handler('publish', 'sql', $c$SELECT jsonb_build_object('published', $1)$c$);
SELECT procq.register_handler('notify', 'shell', $c$/bin/echo notified$c$);

-- alert (run_after 'failure'): runs once all its parents ended and one of
-- them did not succeed; procq.parents($2) says which, and how.
SELECT procq.register_handler('alert', 'sql', $c$
    INSERT INTO demo.alerts (channel, failed, job_id)
    SELECT $1->>'channel', string_agg(format('%s %s (%s)', p.step_key, p.status, regexp_replace(btrim(p.error, E' \n'), '\s+', ' ', 'g')), '; '), $2
      FROM procq.parents($2) AS p
     WHERE p.status <> 'succeeded'
    RETURNING jsonb_build_object('alerted', channel, 'failed', failed)$c$);

-- cleanup (run_after 'completion'): runs once all its parents ended,
-- however they ended, and records what they were.
SELECT procq.register_handler('cleanup', 'sql', $c$
    INSERT INTO demo.cleanups (dir, parents, job_id)
    SELECT $1->>'dir', string_agg(p.step_key || ' ' || p.status, ', ' ORDER BY p.job_id), $2
      FROM procq.parents($2) AS p
    RETURNING jsonb_build_object('removed', dir, 'parents', parents)$c$);
