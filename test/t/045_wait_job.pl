# procq.wait_job waits for a job to end: a producer's session blocked in
# wait_job returns the job's row as soon as another session finishes it
# (a worker with only the worker grant set, the producer with only the
# producer set), and a timeout returns the row as it is.  A cancel
# (pg_cancel_backend) interrupts the wait.
use strict;
use warnings FATAL => 'all';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use ProcqTest;

my $node = procq_node('wait_job', preload => 0);
sql($node, q{
CREATE ROLE app LOGIN;
CREATE ROLE app_worker LOGIN;
GRANT USAGE ON SCHEMA procq TO app, app_worker;
GRANT EXECUTE ON FUNCTION procq.defer, procq.get_job, procq.wait_job TO app;
GRANT EXECUTE ON FUNCTION procq.fetch_job, procq.finish_job TO app_worker;
GRANT app TO app_worker;
});
my $id = sql($node, q{SELECT procq.defer('report')}, user => 'app');

# the producer waits (at most 60 s) in a session of its own
my ($out, $err) = ('', '');
my $waiter = IPC::Run::start(
	[ 'psql', '-XAtq', '-U', 'app', '-d', $node->connstr('postgres'),
		'-c', "SELECT status || ' ' || result FROM procq.wait_job($id, interval '60 seconds')" ],
	'>', \$out, '2>', \$err);
wait_for($node, q{EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%wait_job%' AND usename = 'app')},
	'the producer is waiting in wait_job');
ok($waiter->pumpable, 'wait_job has not returned while the job is todo');

my $t0 = time;
sql($node, qq{SELECT id FROM procq.fetch_job(worker => 'w');
SELECT procq.finish_job($id, 'succeeded', '{"rows": 7}')}, user => 'app_worker');
$waiter->finish;
my $waited = time - $t0;
is($out, "succeeded {\"rows\": 7}\n", 'wait_job returned the finished job');
is($err, '', 'without an error');
note(sprintf('wait_job returned %.3f s after the finish', $waited));

# a timeout returns the row as it is
my $id2 = sql($node, q{SELECT procq.defer('report')}, user => 'app');
is(sql($node, "SELECT status FROM procq.wait_job($id2, interval '200 milliseconds')", user => 'app'),
	'todo', 'after its timeout, wait_job returns the job as it is');

# a cancel interrupts the wait
($out, $err) = ('', '');
$waiter = IPC::Run::start(
	[ 'psql', '-XAtq', '-U', 'app', '-d', $node->connstr('postgres'),
		'-c', "SELECT status FROM procq.wait_job($id2)" ],
	'>', \$out, '2>', \$err);
wait_for($node, q{EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%wait_job%' AND usename = 'app')},
	'the producer is waiting in wait_job without a timeout');
sql($node, q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%wait_job%' AND usename = 'app'});
$waiter->finish;
like($err, qr/canceling statement due to user request/, 'a cancel interrupts wait_job');

$node->stop;
done_testing();
