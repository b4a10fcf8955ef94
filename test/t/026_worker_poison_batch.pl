# Defect 2 of issue 7: the "not run again: its procq worker died 3 times"
# protection must work with batches (procq.batch_size = 10, the default),
# not only with batch_size 1, and must only ever fail the job that killed
# its workers.  One batch of ten jobs: a killer (its handler terminates its
# own backend), a job that fails (division by zero, 5 attempts) and eight
# innocent jobs.  Every innocent job must succeed exactly once, the failing
# job must use its 5 attempts and end failed with its own error (retries
# are not worker deaths), and only the killer may end failed as poison,
# after really killing 3 workers.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('poison_batch', conf => [ 'procq.workers = 1', 'procq.batch_size = 10' ],
	workers => 1);
sql($node, q{
CREATE TABLE ran (job_id bigint PRIMARY KEY);
SELECT procq.register_handler('ok', 'sql', 'INSERT INTO public.ran VALUES ($2)');
SELECT procq.register_handler('killer', 'sql', 'SELECT pg_terminate_backend(pg_backend_pid())');
SELECT procq.register_handler('flaky', 'sql', 'SELECT 1 / 0');
});
my $log_offset = log_size($node);

# One transaction, so that the worker sees all ten at once, in this order.
my $out = sql($node, q{BEGIN;
SELECT count(procq.defer('ok')) FROM generate_series(1, 4);
SELECT procq.defer('killer', max_attempts => 5);
SELECT count(procq.defer('ok')) FROM generate_series(1, 2);
SELECT procq.defer('flaky', max_attempts => 5);
SELECT count(procq.defer('ok')) FROM generate_series(1, 2);
COMMIT});
my @lines = split /\n/, $out;
my ($killer, $flaky) = ($lines[1], $lines[3]);

wait_final($node, 'the batch with a job that kills its worker', 'SELECT id FROM procq.jobs', 180);
check_job($node, $killer, 'the killer ended failed as poison',
	q{status = 'failed' AND error = 'not run again: its procq worker died 3 times while running it'});
check_job($node, $flaky, 'the failing job used its 5 attempts and ended failed with its own error',
	q{status = 'failed' AND attempts = 5 AND error LIKE 'division by zero%'});
is( sql($node, q{SELECT count(*) FILTER (WHERE status = 'succeeded') || ' succeeded, '
       || count(*) FILTER (WHERE status <> 'succeeded') || ' not' FROM procq.jobs WHERE task = 'ok'}),
	'8 succeeded, 0 not', 'every innocent job of the batch succeeded');
is(sql($node, 'SELECT count(*) FROM ran'), '8', 'each innocent job had its effect once');
my @deaths = (substr(slurp_file($node->logfile), $log_offset)
	  =~ /terminating background worker "procq worker" due to administrator command/g);
ok(@deaths >= 3, 'the killer really killed 3 workers (' . scalar(@deaths) . ' terminations logged)');
ok( wait_for($node, q{SELECT count(*) = 1 FROM procq.worker_status WHERE state = 'idle'},
		'the worker did not come back', 60),
	'a worker runs again');

$node->stop;
done_testing();
