# A shell job whose output is JSON that jsonb refuses ("\u0000") must not
# break the worker that ran it.  json_to_jsonb converts such output in a
# subtransaction and catches the error; the error path once left the
# worker's query-cancel holdoff count wrong, so that in the same worker a
# SQL handler's timeout no longer stopped it and cancel_job(abort => true)
# no longer stopped a running SQL job.  One worker, so that the SQL jobs
# run in the worker that ran the shell job.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('json_holdoff',
	conf => [ 'procq.workers = 1', 'procq.enable_shell = on' ],
	workers => 1);
my $worker_pid = sql($node, 'SELECT pid FROM procq.worker_status');
register($node, 'nul_json', 'shell', q{echo '"\u0000"'});
register($node, 'sql_slow', 'sql', 'SELECT pg_sleep(60)', '1s');
register($node, 'sql_long', 'sql', 'SELECT pg_sleep(60)');

# bad_json: a shell job printing JSON that jsonb refuses, which must end as
# a JSON string of that text.
sub bad_json
{
	my $shell = defer($node, 'nul_json');
	wait_final($node, "shell job $shell", $shell, 90);
	check_job($node, $shell, 'output jsonb refuses is kept as a JSON string',
		q{status = 'succeeded' AND result = to_jsonb('"\u0000"'::text)});
	return;
}
my $diag = 'SELECT id, status::text, error FROM procq.jobs WHERE id = %d UNION ALL '
  . 'SELECT job_id, state, task FROM procq.worker_status';

bad_json();

# Then, in the same worker, a SQL handler with a 1 s timeout sleeping 60 s.
my $timed = defer($node, 'sql_slow');
wait_for($node,
	"(SELECT status NOT IN ('todo', 'doing') FROM procq.jobs WHERE id = $timed)",
	"SQL job $timed (timeout 1 s, pg_sleep(60)) did not end within 20 s", 20,
	sprintf($diag, $timed));
check_job($node, $timed, 'the handler timeout still stops a SQL job after the bad JSON',
	q{status = 'failed' AND error LIKE 'canceling statement due to statement timeout%'});

# And after another such shell job, cancel_job(abort => true) still stops
# a running SQL job at once.  (Before the fix, the first SQL job after the
# bad JSON ran on to its end; its failure reset the count.)
bad_json();
my $long = defer($node, 'sql_long');
wait_for($node, "(SELECT job_id = $long FROM procq.worker_status)",
	"the worker did not start SQL job $long");
is(sql($node, "SELECT procq.cancel_job($long, abort => true)"), 't',
	'cancel_job(abort => true) finds the running SQL job');
wait_for($node,
	"(SELECT status NOT IN ('todo', 'doing') FROM procq.jobs WHERE id = $long)",
	"aborted SQL job $long did not end within 20 s", 20, sprintf($diag, $long));
check_job($node, $long, 'cancel_job(abort => true) still aborts a SQL job after the bad JSON',
	q{status = 'cancelled' AND error = 'aborted by procq.cancel_job'});

is(sql($node, 'SELECT pid FROM procq.worker_status'), $worker_pid,
	'all of it ran in the same worker process');

$node->stop;
done_testing();
