# A SIGQUIT from the postmaster (another process crashed, or an immediate
# shutdown) is not a death of the batch its worker runs: a SQL job that
# takes 4 s, in flight three times while another process (the autovacuum
# launcher) is killed with SIGKILL and the server crash-restarts, and once
# more in an immediate shutdown, must still run to success afterwards, not
# be failed as poison ("its procq worker died 3 times").
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('sigquit', conf => [ 'procq.workers = 1' ], workers => 1);
sql($node, q{CREATE TABLE done (job_id bigint PRIMARY KEY);
SELECT procq.register_handler('long', 'sql',
  'INSERT INTO public.done SELECT $2 FROM pg_sleep(4)')});

sub wait_running
{
	my ($id, $what) = @_;
	return wait_for($node,
		"SELECT count(*) = 1 FROM procq.worker_status WHERE job_id = $id",
		"no worker started running job $id ($what)", 60, 'SELECT * FROM procq.worker_status');
}

my $long = sql($node, q{SELECT procq.defer('long', max_attempts => 1)});
for my $i (1 .. 3)
{
	wait_running($long, "before crash restart $i");
	my $pid = sql($node, q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'autovacuum launcher'});
	my $offset = log_size($node);
	kill 'KILL', $pid;
	wait_crash($node, $pid, $offset);
}
wait_running($long, 'before the immediate shutdown');
$node->stop('immediate');
$node->start;

wait_final($node, 'the long SQL job', $long, 90);
check_job($node, $long, 'a SQL job in flight during 3 crash restarts of others and an immediate shutdown ran to success',
	q{status = 'succeeded' AND attempts = 1});
is(sql($node, "SELECT count(*) FROM done WHERE job_id = $long"), '1', 'its effect is there once');

$node->stop;
done_testing();
