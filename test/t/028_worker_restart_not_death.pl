# Defect 5 of issue 7: a clean stop of a worker while it runs a job (a
# fast restart of the server, or procq.workers lowered by a reload) is not
# a worker death.  A SQL job that takes 4 s, interrupted three times (two
# fast restarts and one procq.workers = 0 reload), must still run to
# success afterwards, not be failed as poison ("its procq worker died 3
# times").  A shell job with max_attempts 1 interrupted by a fast restart
# must go back to todo without using up its attempt, and then succeed.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('restart', conf => [ 'procq.workers = 1', 'procq.enable_shell = on' ],
	workers => 1);
sql($node, q{CREATE TABLE done (job_id bigint PRIMARY KEY);
SELECT procq.register_handler('long', 'sql',
  'INSERT INTO public.done SELECT $2 FROM pg_sleep(4)')});

# wait_running(ID): wait until a worker runs job ID.
sub wait_running
{
	my ($id, $what) = @_;
	return wait_for($node,
		"SELECT count(*) = 1 FROM procq.worker_status WHERE job_id = $id",
		"no worker started running job $id ($what)", 60, 'SELECT * FROM procq.worker_status');
}

my $long = sql($node, q{SELECT procq.defer('long', max_attempts => 1)});
for my $i (1 .. 2)
{
	wait_running($long, "before fast restart $i");
	$node->restart(mode => 'fast');
}
wait_running($long, 'before the reload');
sql($node, q{ALTER SYSTEM SET procq.workers = 0; SELECT pg_reload_conf()});
wait_for($node, 'SELECT count(*) = 0 FROM procq.worker_status', 'the worker did not stop', 60);
sql($node, q{ALTER SYSTEM SET procq.workers = 1; SELECT pg_reload_conf()});

wait_final($node, 'the long SQL job', $long, 90);
check_job($node, $long, 'a SQL job interrupted by 3 clean stops still ran to success',
	q{status = 'succeeded'});
is(sql($node, "SELECT count(*) FROM done WHERE job_id = $long"), '1', 'its effect is there once');

my $n = register_slow($node, 30);
my $slow = defer($node, 'slow', undef, 1);
wait_running($slow, 'shell job');
$node->restart(mode => 'fast');
wait_final($node, 'the shell job interrupted by a restart', $slow, 60);
check_job($node, $slow, 'a shell job interrupted by a fast restart ran again, its attempt not used up',
	q{status = 'succeeded' AND attempts = 1 AND result = '"second run"'});

$node->stop;
done_testing();
