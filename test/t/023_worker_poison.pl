# A SQL job whose handler kills its own worker cannot bring the queue down.
# Its worker's batch is rolled back, so the job, never counted as attempted,
# would run again forever; instead, once it has killed 3 workers it is
# failed ("its procq worker died 3 times while running it") and the other
# jobs all run.  A job in flight when a worker dies once still runs again
# (and succeeds).
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('poison', conf => [ 'procq.workers = 1', 'procq.batch_size = 1' ]);
sql($node, 'CREATE TABLE ran (job_id bigint PRIMARY KEY)');
sql($node, q{SELECT procq.register_handler('ok', 'sql', 'INSERT INTO ran VALUES ($2)')});
sql($node,
	q{SELECT procq.register_handler('suicide', 'sql', 'SELECT pg_terminate_backend(pg_backend_pid())')});
sql($node, q{SELECT procq.register_handler('once', 'sql',
     'SELECT CASE WHEN nextval(''once_seq'') = 1 THEN pg_terminate_backend(pg_backend_pid()) END')});
sql($node, 'CREATE SEQUENCE once_seq');

# The poison job first (priority), then jobs that must still run.
my $poison = sql($node, q{SELECT procq.defer('suicide', priority => 10, max_attempts => 5)});
my $once = sql($node, q{SELECT procq.defer('once', priority => 5)});
sql($node, q{SELECT procq.defer('ok') FROM generate_series(1, 5)});

wait_final($node, 'all jobs', 'SELECT id FROM procq.jobs');
my $state = sql($node,
	"SELECT status || ' / ' || attempts || ' / ' || error FROM procq.jobs WHERE id = $poison");
ok($state eq 'failed / 1 / not run again: its procq worker died 3 times while running it',
	"the job that killed its worker 3 times ended failed: $state")
  or diag("poison job: $state");

ok(sql($node, "SELECT status FROM procq.jobs WHERE id = $once") eq 'succeeded',
	'a job whose worker died once ran again and succeeded')
  or diag('the job that killed its worker once did not run again to success');

ok( sql($node, q{SELECT count(*) FROM procq.jobs WHERE task = 'ok' AND status = 'succeeded'})
	  eq '5'
	  && sql($node, 'SELECT count(*) FROM ran') eq '5',
	'the other 5 jobs ran, each once')
  or diag('the other jobs did not all run once');

ok( wait_for(
		$node, 'SELECT count(*) = 1 FROM procq.worker_status',
		'timed out waiting for a worker is running again', 60),
	'the worker was restarted and runs');

$node->stop;
done_testing();
