# A transaction that makes a job ready wakes the idle background workers
# when it commits; polling is only a safety net.  With procq.poll_interval
# = 1h, a worker that is asleep must still start (1) a job deferred ready,
# (2) a child released by its parent's success, (3) the next job of a lock
# queue once its head finishes, each long before the next poll could.  And
# a rolled-back defer wakes nobody into running it.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('wakeup', conf => [ 'procq.workers = 1', "procq.poll_interval = '1h'" ]);
sql($node, 'CREATE TABLE ran (job_id bigint PRIMARY KEY)');
sql($node, q{SELECT procq.register_handler('run', 'sql', 'INSERT INTO ran VALUES ($2)')});

# Let the worker finish its startup round and fall asleep.
wait_for($node, q{SELECT count(*) = 1 FROM procq.worker_status WHERE state = 'idle'},
	'timed out waiting for the worker is idle', 60);
sleep 1;

# (1) deferred ready
my $id = sql($node, q{SELECT procq.defer('run')});
ok( wait_for(
		$node, "SELECT status = 'succeeded' FROM procq.jobs WHERE id = $id",
		"timed out waiting for job $id, deferred ready, ran without waiting for the 1h poll", 30),
	"a ready defer woke the sleeping worker (job $id)");

# (2) released by its parent, which an external worker finishes
my $parent = sql($node, q{SELECT procq.defer('external')});
my $child = sql($node, "SELECT procq.defer('run', depends_on => ARRAY[$parent])");
sleep 1;
my $ok = 1;
if (sql($node, "SELECT status FROM procq.jobs WHERE id = $child") ne 'todo')
{
	diag("child $child ran before its parent succeeded");
	$ok = 0;
}
sql($node, q{SELECT procq.finish_job(id, 'succeeded') FROM procq.fetch_job(worker => 'external')});
$ok = 0
  unless wait_for($node, "SELECT status = 'succeeded' FROM procq.jobs WHERE id = $child",
	"timed out waiting for child $child ran once its parent succeeded", 30);
ok($ok, "a parent's success woke the sleeping worker for its child (job $child)");

# (3) the next job of a lock queue
my $head = sql($node, q{SELECT procq.defer('external', lock => 'L')});
my $next = sql($node, q{SELECT procq.defer('run', lock => 'L')});
sql($node, q{SELECT id FROM procq.fetch_job(worker => 'external')});
sleep 1;
$ok = 1;
if (sql($node, "SELECT status FROM procq.jobs WHERE id = $next") ne 'todo')
{
	diag("job $next ran while the lock's head $head was running");
	$ok = 0;
}
sql($node, "SELECT procq.finish_job($head, 'succeeded')");
$ok = 0
  unless wait_for($node, "SELECT status = 'succeeded' FROM procq.jobs WHERE id = $next",
	"timed out waiting for job $next ran once the lock's head finished", 30);
ok($ok, "the end of a lock's head woke the sleeping worker for the next job (job $next)");

# A rolled-back defer leaves nothing to run.
sql($node, q{BEGIN; SELECT procq.defer('run'); ROLLBACK});
sleep 1;
ok(sql($node, q{SELECT count(*) FROM procq.jobs WHERE status <> 'succeeded'}) eq '0',
	'a rolled-back defer left nothing behind')
  or diag('a rolled-back defer left a job behind');

$node->stop;
done_testing();
