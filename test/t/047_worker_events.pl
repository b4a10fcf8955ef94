# The job history of the background workers' runs (issue 10): every job a
# worker runs leaves a 'fetched' and a final event naming that worker and
# the attempt, from the batch claim and the batch's one outcome statement;
# a failing SQL job that is retried keeps both attempts (the failure with
# its error); a shell job too; orphan recovery after a worker is killed is
# recorded as 'stalled'; and with procq.record_events off (ALTER SYSTEM and
# a reload, which the workers follow) the workers record nothing.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('events', workers => 2,
	conf => [ 'procq.workers = 2', 'procq.enable_shell = on' ]);
sql($node, 'CREATE TABLE ran (job_id bigint PRIMARY KEY)');
sql($node, q{SELECT procq.register_handler('run', 'sql', 'INSERT INTO public.ran VALUES ($2)')});
# fails on its first attempt, succeeds on its second (a sequence is not
# rolled back with the failed attempt)
sql($node, 'CREATE SEQUENCE public.flaky_seq');
sql($node, q{CREATE FUNCTION public.fail_first(id bigint) RETURNS int
	LANGUAGE plpgsql AS $$
	BEGIN
		RAISE EXCEPTION 'first attempt of job % fails', id;
	END $$});
sql($node, q{SELECT procq.register_handler('flaky', 'sql',
	$$SELECT CASE WHEN pg_catalog.nextval('public.flaky_seq') > 1 THEN 1
	  ELSE public.fail_first($2) END$$)});
register($node, 'sh', 'shell', '/bin/true');

my $ids = sql($node, q{SELECT string_agg(id::text, ',') FROM
	(SELECT procq.defer('run', jsonb_build_object('i', i)) AS id FROM generate_series(1, 30) i) s});
my $flaky = sql($node, q{SELECT procq.defer('flaky', max_attempts => 2)});
my $shell = sql($node, q{SELECT procq.defer('sh')});
wait_final($node, 'the SQL and shell jobs', "$ids,$flaky,$shell", 60);

is(sql($node, "SELECT count(*) FROM procq.jobs WHERE id IN ($ids,$shell) AND status = 'succeeded'"),
	'31', 'the 30 SQL jobs and the shell job succeeded');
is( sql($node, qq{
	SELECT count(*) FROM procq.jobs j
	WHERE j.id IN ($ids,$shell)
	  AND (SELECT array_agg(e.event || ':' || e.status || ':' || coalesce(e.attempt::text, '-')
	                        ORDER BY e.id)
	       FROM procq.job_events e WHERE e.job_id = j.id)
	      = ARRAY['deferred:todo:0', 'fetched:doing:1', 'succeeded:succeeded:1']
	  AND (SELECT count(DISTINCT e.worker) = 1 AND bool_and(e.worker = j.worker)
	       FROM procq.job_events e WHERE e.job_id = j.id AND e.event <> 'deferred')}),
	'31', "each job run by a worker has deferred, fetched and succeeded events, the last two naming its worker");
like(sql($node, "SELECT string_agg(DISTINCT worker, ',') FROM procq.job_events WHERE event = 'fetched'"),
	qr/^procq worker \d+ pid \d+(,procq worker \d+ pid \d+)?$/, 'the workers are named as the workers name themselves');
is( sql($node, q{SELECT count(*) FROM (SELECT e.xmin, e.cmin FROM procq.job_events e
	JOIN procq.jobs j ON j.id = e.job_id WHERE j.task = 'run' AND e.event = 'fetched'
	GROUP BY 1, 2 HAVING count(*) > 1) s}) > 0 ? 'yes' : 'no',
	'yes', 'a claim of several jobs writes their fetched events in one statement');

check_job($node, $flaky, 'the flaky job succeeded on its second attempt',
	"status = 'succeeded' AND attempts = 2");
is( sql($node, qq{SELECT string_agg(format('%s %s %s %s', event, status, attempt,
	  CASE WHEN worker LIKE 'procq worker %' THEN 'worker' ELSE coalesce(worker, '-') END), ', '
	  ORDER BY id) FROM procq.job_events WHERE job_id = $flaky}),
	'deferred todo 0 -, fetched doing 1 worker, failed todo 1 worker, fetched doing 2 worker, succeeded succeeded 2 worker',
	'the flaky job keeps both attempts');
like(sql($node, "SELECT error FROM procq.job_events WHERE job_id = $flaky AND event = 'failed'"),
	qr/first attempt of job $flaky fails/, "the failed attempt's event keeps its error");

# Orphan recovery: a shell job whose worker is killed goes back as 'stalled'.
register($node, 'slow', 'shell', '/bin/sleep 30');
my $slow = sql($node, q{SELECT procq.defer('slow', max_attempts => 2)});
wait_for($node, "SELECT status = 'doing' FROM procq.jobs WHERE id = $slow",
	"timed out waiting for the slow shell job to start", 30);
my $pid = sql($node, "SELECT pid FROM procq.worker_status WHERE job_id = $slow");
sql($node, 'SELECT procq.unregister_handler(\'slow\')');
kill 'KILL', $pid;
ok( wait_for($node, qq{SELECT EXISTS (SELECT 1 FROM procq.job_events
	WHERE job_id = $slow AND event = 'stalled')},
	'timed out waiting for the stalled event of the killed worker\'s job', 60),
	'the job of a killed worker is recovered as a stalled event');
like(sql($node, "SELECT format('%s %s %s', status, attempt, error) FROM procq.job_events WHERE job_id = $slow AND event = 'stalled'"),
	qr/^todo 1 its procq worker died/, 'stalled: back to todo, attempt 1, with the reason');

# record_events off: the workers follow a reload and record nothing.
wait_for($node, "(SELECT count(*) FILTER (WHERE state = 'idle') FROM procq.worker_status) = 2",
	'the workers did not come back', 60);
sql($node, 'ALTER SYSTEM SET procq.record_events = off');
sql($node, 'SELECT pg_reload_conf()');
sleep 2;
my $quiet = sql($node, q{SELECT string_agg(id::text, ',') FROM
	(SELECT procq.defer('run', jsonb_build_object('j', i)) AS id FROM generate_series(1, 10) i) s});
wait_final($node, 'the jobs deferred with record_events off', $quiet, 60);
is(sql($node, "SELECT count(*) FROM procq.jobs WHERE id IN ($quiet) AND status = 'succeeded'"),
	'10', 'the jobs ran with record_events off');
is(sql($node, "SELECT count(*) FROM procq.job_events WHERE job_id IN ($quiet)"),
	'0', 'and left no events');

$node->stop;
done_testing();
