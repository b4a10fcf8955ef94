# A worker's claim locks only the jobs it takes: with procq.batch_size = 2
# and ready jobs of two tasks with handlers, a batch in flight holds the
# row locks of its 2 jobs, not of the best 2 of each task, so another
# session (fetch_job, another worker, cancel_job) can take every other
# ready job without waiting or skipping it.  And with two workers and
# one task, both run a batch at once: the candidates are enough for the
# second worker to find jobs the first one's batch does not hold.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('claim_locks', conf => [ 'procq.workers = 1', 'procq.batch_size = 2' ],
	workers => 1);
sql($node, q{
SELECT procq.register_handler('a', 'sql', 'SELECT pg_sleep(3)');
SELECT procq.register_handler('b', 'sql', 'SELECT pg_sleep(3)');
ALTER SYSTEM SET procq.workers = 0;
SELECT pg_reload_conf();
});
wait_for($node, 'SELECT count(*) = 0 FROM procq.worker_status', 'the worker did not stop', 60);
my $ids = sql($node, q{SELECT string_agg(procq.defer(t)::text, ',')
  FROM (SELECT t FROM unnest(ARRAY['a', 'b']) t, generate_series(1, 5)) s});
sql($node, q{ALTER SYSTEM SET procq.workers = 1; SELECT pg_reload_conf()});
wait_for($node, q{SELECT count(*) = 1 FROM procq.worker_status WHERE job_id IS NOT NULL},
	'the worker did not start its batch', 60, 'SELECT * FROM procq.worker_status');
is(sql($node, q{SELECT count(*) FROM (SELECT id FROM procq.jobs WHERE status = 'todo'
  FOR UPDATE SKIP LOCKED) s}), '8', 'the batch of 2 holds the row locks of its 2 jobs only');
wait_final($node, 'the jobs', $ids, 90);
is(sql($node, "SELECT count(*) FROM procq.jobs WHERE status = 'succeeded'"), '10', 'all jobs ran');

# Two workers and one task: the second worker's claim must not be left
# empty by the first one's locked batch (both run a batch at once).
sql($node, q{ALTER SYSTEM SET procq.workers = 0; SELECT pg_reload_conf()});
wait_for($node, 'SELECT count(*) = 0 FROM procq.worker_status', 'the worker did not stop', 60);
$ids = sql($node, q{SELECT string_agg(procq.defer('a')::text, ',') FROM generate_series(1, 8)});
sql($node, q{ALTER SYSTEM SET procq.workers = 2; SELECT pg_reload_conf()});
wait_for($node, q{SELECT count(*) = 2 FROM procq.worker_status WHERE job_id IS NOT NULL},
	'two workers did not run a batch of the same task at once', 60, 'SELECT * FROM procq.worker_status');
wait_final($node, 'the jobs of one task', $ids, 90);

$node->stop;
done_testing();
