# How a background worker runs SQL handlers.  A failing handler's writes
# are rolled back and its job records the error (message, SQLSTATE, DETAIL,
# HINT, CONTEXT) while its neighbours in the same batch transaction succeed;
# failed jobs are retried up to max_attempts; settings a handler changes do
# not reach the next job; a handler's timeout cancels it like
# statement_timeout (57014); the result is the first column of the first
# row as jsonb (NULL without rows); a command of two statements is refused
# at registration.
# One worker on purpose: then jobs deferred in one transaction run in one
# batch in one process, so "same batch" and "next job" are certain.
#
# Each group of checks that the bash test (test/shell/worker_sql.sh) closed
# with one "ok" line is a subtest of that name.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('sql', conf => [ 'procq.workers = 1', 'procq.batch_size = 100' ]);

sql($node, q{
CREATE TABLE effects (job_id bigint, xid bigint, note text);
CREATE SEQUENCE flaky_calls;
CREATE SEQUENCE hopeless_calls;
-- Writes an effect, then fails when args ask for it.
CREATE FUNCTION step(args jsonb, job bigint) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO effects VALUES (job, txid_current(), 'step');
    IF args ? 'raise' THEN
        RAISE EXCEPTION 'job % broke in transaction %', job, txid_current()
            USING DETAIL = 'the detail', HINT = 'the hint';
    END IF;
    RETURN 1 / (args->>'divisor')::int;
END $$;
-- Sequences are not rolled back: they count the calls.
CREATE FUNCTION flaky(job bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint := nextval('flaky_calls');
BEGIN
    INSERT INTO effects VALUES (job, txid_current(), 'flaky call ' || n);
    IF n < 3 THEN RAISE EXCEPTION 'flaky call % fails', n; END IF;
    RETURN n;
END $$;
CREATE FUNCTION hopeless(job bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE n bigint := nextval('hopeless_calls');
BEGIN
    INSERT INTO effects VALUES (job, txid_current(), 'hopeless call ' || n);
    RAISE EXCEPTION 'hopeless call % fails', n;
END $$;
SELECT procq.register_handler('step', 'sql', 'SELECT step($1, $2)');
SELECT procq.register_handler('flaky', 'sql', 'SELECT flaky($2)');
SELECT procq.register_handler('hopeless', 'sql', 'SELECT hopeless($2)');
SELECT procq.register_handler('sleepy', 'sql', 'SELECT pg_sleep(10)', '300ms');
SELECT procq.register_handler('nap', 'sql', 'SELECT 1 FROM pg_sleep(0.5)');
SELECT procq.register_handler('report', 'sql', $$SELECT jsonb_build_object(
    'search_path', current_setting('search_path'), 'work_mem', current_setting('work_mem'),
    'lock_timeout', current_setting('lock_timeout'),
    'statement_timeout', current_setting('statement_timeout'), 'user', current_user)$$);
SELECT procq.register_handler('set_path', 'sql', 'SET search_path = leaked, pg_catalog');
SELECT procq.register_handler('set_mem', 'sql', 'SET work_mem = ''77MB''');
SELECT procq.register_handler('set_config', 'sql',
    $$SELECT set_config('lock_timeout', '4321', false), set_config('statement_timeout', '5432', false)$$);
SELECT procq.register_handler('set_and_fail', 'sql', $$SELECT set_config('work_mem', '99MB', false), 1/0$$);
SELECT procq.register_handler('res_jsonb', 'sql', $$SELECT jsonb_build_object('job', $2, 'args', $1)$$);
SELECT procq.register_handler('res_jsonb_string', 'sql', $$SELECT '"as is"'::jsonb$$);
SELECT procq.register_handler('res_int', 'sql', 'SELECT 40 + 2');
SELECT procq.register_handler('res_text', 'sql', $$SELECT 'hello'::text$$);
SELECT procq.register_handler('res_rows', 'sql', 'SELECT x, -x FROM generate_series(7, 9) x ORDER BY x');
SELECT procq.register_handler('res_no_rows', 'sql', 'SELECT 1 WHERE false');
SELECT procq.register_handler('res_null', 'sql', 'SELECT NULL::int');
SELECT procq.register_handler('res_insert', 'sql', $$INSERT INTO effects VALUES ($2, 0, 'insert')$$);
SELECT procq.register_handler('res_void', 'sql', $$SELECT pg_notify('procq_test', $2::text)$$);
SELECT procq.register_handler('res_returning', 'sql',
    $$INSERT INTO effects VALUES ($2, 0, 'returning') RETURNING note$$);
});

# --- A failing handler in a batch: rolled back alone, error recorded.
sql($node, q{BEGIN;
SELECT procq.defer('step', '{"divisor": 1}');
SELECT procq.defer('step', '{"raise": true}');
SELECT procq.defer('step', '{"divisor": 1}');
SELECT procq.defer('step', '{"divisor": 0}');
SELECT procq.defer('step', '{"divisor": 1}');
COMMIT});
wait_final($node, 'the batch of step jobs', q{SELECT id FROM procq.jobs WHERE task = 'step'});
my $statuses = '1:succeeded 2:failed 3:succeeded 4:failed 5:succeeded';
is( sql($node, q{SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM procq.jobs WHERE task = 'step'}),
	$statuses, "only the failing jobs of a batch fail ($statuses)");
is(sql($node, q{SELECT string_agg(job_id::text, ',' ORDER BY job_id) FROM effects}),
	'1,3,5', 'the writes of the failing handlers were rolled back, the others kept');
# The raising job says which transaction it ran in: its neighbours' effects
# committed in that same transaction.
is( sql($node, q{SELECT count(*) FROM effects e, procq.jobs j
         WHERE j.id = 2 AND e.xid = substring(j.error FROM 'in transaction ([0-9]+)')::bigint}),
	3, 'the failing job and its 3 neighbours shared one transaction');
subtest 'a raised error is recorded with message, SQLSTATE, DETAIL, HINT and CONTEXT' => sub {
	my $err = sql($node, 'SELECT error FROM procq.jobs WHERE id = 2');
	for my $part ('job 2 broke in transaction ', '(SQLSTATE P0001)', "\nDETAIL: the detail",
		"\nHINT: the hint", "\nCONTEXT: PL/pgSQL function step(jsonb,bigint) line")
	{
		(my $shown = $part) =~ s/\n/\\n/g;
		like($err, qr/\Q$part\E/, "error of the RAISE job has [$shown]");
	}
};
like(sql($node, 'SELECT error FROM procq.jobs WHERE id = 4'),
	qr/^\Qdivision by zero (SQLSTATE 22012)\E\nCONTEXT: /,
	'a division by zero is recorded with its SQLSTATE 22012 and CONTEXT');

# --- Retries.
my $flaky = sql($node, q{SELECT procq.defer('flaky', max_attempts => 3)});
my $hopeless = sql($node, q{SELECT procq.defer('hopeless', max_attempts => 3)});
wait_final($node, 'the retried jobs', "$flaky, $hopeless");
subtest 'a job failing twice succeeds at attempt 3 of 3, with only its last write kept' => sub {
	is( sql($node, "SELECT status || ' ' || attempts || ' ' || result || ' ' || (error IS NULL)
         FROM procq.jobs WHERE id = $flaky"),
		'succeeded 3 3 true', 'flaky job (fails twice) succeeded after 3 attempts');
	is(sql($node, "SELECT string_agg(note, ',') FROM effects WHERE job_id = $flaky"),
		'flaky call 3', "flaky job effects: only the successful call's write stays");
};
subtest 'an always failing job ends failed after 3 attempts, with nothing written' => sub {
	like(sql($node, "SELECT status || ' ' || attempts || ' ' || error FROM procq.jobs WHERE id = $hopeless"),
		qr/^\Qfailed 3 hopeless call 3 fails (SQLSTATE P0001)\E/,
		'always failing job failed after 3 attempts');
	is( sql($node, "SELECT (SELECT last_value FROM hopeless_calls) || ' ' || count(*) FROM effects WHERE job_id = $hopeless"),
		'3 0', 'always failing job: [calls, effects]');
};

# --- Settings changed by a handler do not reach the next job: not in the
# same batch (the reporter waits for the setters), nor in a later one.
subtest 'SET search_path/work_mem and set_config in a handler do not leak into later jobs' => sub {
	my $baseline_id = sql($node, q{SELECT procq.defer('report')});
	wait_final($node, 'the baseline report', $baseline_id);
	my $baseline = sql($node, "SELECT result FROM procq.jobs WHERE id = $baseline_id AND status = 'succeeded'");
	like($baseline, qr/\Q"work_mem": "4MB"\E/, 'baseline settings');
	sql($node, q{BEGIN;
SELECT procq.defer('set_path');
SELECT procq.defer('set_mem');
SELECT procq.defer('set_config');
SELECT procq.defer('set_and_fail');
SELECT procq.defer('report', depends_on => ARRAY(SELECT id FROM procq.jobs
    WHERE task IN ('set_path', 'set_mem', 'set_config')));
COMMIT});
	my $same = sql($node, q{SELECT max(id) FROM procq.jobs WHERE task = 'report'});
	wait_final($node, 'the setters and their report', "SELECT id FROM procq.jobs WHERE id > $baseline_id");
	is( sql($node, "SELECT string_agg(task || ':' || status, ' ' ORDER BY id) FROM procq.jobs WHERE id > $baseline_id"),
		'set_path:succeeded set_mem:succeeded set_config:succeeded set_and_fail:failed report:succeeded',
		'setter jobs and their report');
	is(sql($node, q{SELECT result FROM procq.jobs WHERE task = 'set_config'}),
		'"4321ms"', 'set_config in a handler takes effect there');
	is(sql($node, "SELECT result FROM procq.jobs WHERE id = $same AND status = 'succeeded'"),
		$baseline, 'settings do not leak into the next job of the batch');
	my $later = sql($node, q{SELECT procq.defer('report')});
	wait_final($node, 'the later report', $later);
	is(sql($node, "SELECT result FROM procq.jobs WHERE id = $later AND status = 'succeeded'"),
		$baseline, 'settings do not leak into a later batch');
};

# --- Timeout = statement timeout.
subtest "a handler's timeout cancels it with SQLSTATE 57014 well before pg_sleep(10) ends" => sub {
	my $sleepy = sql($node, q{SELECT procq.defer('sleepy')});
	my $nap = sql($node, q{SELECT procq.defer('nap')});
	wait_final($node, 'the job with a 300ms timeout', "$sleepy, $nap");
	like( sql($node, "SELECT status || ' ' || (finished_at - started_at < interval '9 s') || ' ' || error
         FROM procq.jobs WHERE id = $sleepy"),
		qr/^\Qfailed true canceling statement due to statement timeout (SQLSTATE 57014)\E/,
		'pg_sleep(10) with timeout 300ms');
	is(sql($node, "SELECT status FROM procq.jobs WHERE id = $nap"),
		'succeeded', 'a job without timeout after the timed out one');
};

# --- Results: first column of the first row, as jsonb.
subtest 'results: jsonb as is, int and text converted, first column of the first row, NULL without rows' => sub {
	sql($node, q{SELECT procq.defer(t, '{"a": [1, 2]}') FROM unnest(ARRAY['res_jsonb', 'res_jsonb_string',
    'res_int', 'res_text', 'res_rows', 'res_no_rows', 'res_null', 'res_insert', 'res_returning']) t});
	wait_final($node, 'the result jobs', q{SELECT id FROM procq.jobs WHERE task LIKE 'res\_%'});
	for my $case (
		[ res_jsonb_string => '"as is" string' ],
		[ res_int          => '42 number' ],
		[ res_text         => '"hello" string' ],
		[ res_rows         => '7 number' ],
		[ res_no_rows      => 'NULL -' ],
		[ res_null         => 'NULL -' ],
		[ res_insert       => 'NULL -' ],
		[ res_returning    => '"returning" string' ])
	{
		my ($task, $expected) = @$case;
		is( sql($node, "SELECT status || ' ' || coalesce(result::text, 'NULL') || ' ' || coalesce(jsonb_typeof(result), '-')
             FROM procq.jobs WHERE task = '$task'"),
			"succeeded $expected", "result of $task");
	}
	is( sql($node, q{SELECT result = jsonb_build_object('job', id, 'args', args) FROM procq.jobs WHERE task = 'res_jsonb'}),
		't', 'result of res_jsonb is the jsonb it returned');
};

# --- A command must be one statement.
subtest "a sql handler with two statements (or none) is refused at registration, one with a ';' is not" => sub {
	expect_sqlstate($node, '22023', 'two statements',
		q{SELECT procq.register_handler('two', 'sql', 'SELECT 1; SELECT 2')});
	expect_sqlstate($node, '22023', 'no statement',
		q{SELECT procq.register_handler('two', 'sql', ' ; ')});
	is(sql($node, q{SELECT count(*) FROM procq.handlers WHERE task = 'two'}),
		0, 'a refused handler is not stored');
	ok(defined try_sql($node, q{SELECT procq.register_handler('two', 'sql', 'SELECT 1;')}),
		"a handler 'SELECT 1;' is accepted");
};

# --- The workers keep a plan per handler: a handler registered again runs
# its new statement, and a table its plan uses can be dropped and created
# again in between.
subtest 'a handler registered again runs its new statement; its plan follows table changes' => sub {
	sql($node, q{CREATE TABLE versions (v int);
SELECT procq.register_handler('versioned', 'sql', 'SELECT count(*) FROM public.versions')});
	my $a = sql($node, q{SELECT procq.defer('versioned')});
	wait_final($node, 'the first versioned job', $a);
	sql($node, q{SELECT procq.register_handler('versioned', 'sql', 'SELECT 100 + count(*) FROM public.versions')});
	sql($node, q{DROP TABLE versions; CREATE TABLE versions (v int); INSERT INTO versions VALUES (1)});
	my $b = sql($node, q{SELECT procq.defer('versioned')});
	wait_final($node, 'the second versioned job', $b);
	is( sql($node, "SELECT string_agg(status || ' ' || result::text, ', ' ORDER BY id) FROM procq.jobs WHERE id IN ($a, $b)"),
		'succeeded 0, succeeded 101', 'first the old statement, then the new one on the new table');
};

# --- A handler whose first column is void (a void function) succeeds.
# Last, so that a failure here hides no other check.
my $void = sql($node, q{SELECT procq.defer('res_void')});
wait_final($node, 'the void result job', $void);
like(sql($node, "SELECT status || ' ' || coalesce(error, '') FROM procq.jobs WHERE id = $void"),
	qr/^succeeded /, 'a handler returning void succeeds');

$node->stop;
done_testing();
