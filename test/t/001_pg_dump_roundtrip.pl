# Jobs are user data.  A database dumped with pg_dump and restored into an
# empty database keeps its jobs, dependencies and bookkeeping, and the
# restored queue goes on working: ids continue after the restored ones,
# waiting children are released by their parent.  The job history
# (procq.job_events, issue 10) comes back as it was, without events of its
# own for the restored jobs, and goes on with ids after the restored ones.
use strict;
use warnings FATAL => 'all';
use ProcqTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = procq_node('dump', preload => 0);

sql($node, q{
SELECT procq.defer('parent');
SELECT procq.defer('child', depends_on => ARRAY[1], lock => 'L');
SELECT procq.defer('behind lock', lock => 'L');
SELECT procq.defer('later', scheduled_at => now() + interval '1 day');
SELECT procq.defer('ran', max_attempts => 2);
SELECT procq.finish_job(5, 'failed', error => 'once') FROM procq.fetch_job(worker => 'w1', tasks => '{ran}');
SELECT procq.finish_job(5, 'succeeded') FROM procq.fetch_job(worker => 'w2', tasks => '{ran}');
});
my $history = q{SELECT string_agg(format('%s:%s:%s:%s:%s:%s:%s:%s', id, job_id, at, event, status,
  attempt, worker, error), ' ' ORDER BY id) FROM procq.job_events};
my $events_before = sql($node, $history);

my $snapshot = q{SELECT string_agg(format('%s:%s:%s:%s:%s:%s', id, task, status,
  pending_parents, lock_blocked, delayed), ' ' ORDER BY id) FROM procq.jobs};
my $before = sql($node, $snapshot);

sql($node, 'CREATE DATABASE restored');
my $dump = $node->basedir . '/dump.sql';
$node->command_ok(
	[ 'pg_dump', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump of a database with procq jobs');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', $dump, '-d', $node->connstr('restored') ],
	'the dump restores into an empty database');

is(sql($node, $snapshot, db => 'restored'), $before,
	'jobs and their bookkeeping are the same after restore');
is(sql($node, q{SELECT string_agg(job_id || '->' || depends_on, ',') FROM procq.job_dependencies},
		db => 'restored'),
	'2->1', 'dependencies are the same after restore');
is(sql($node, $history, db => 'restored'), $events_before,
	'the job history is the same after restore (no events for the restored rows)');

# The restored queue works: the next id follows the restored ones, and the
# parent releases its child.
is(sql($node, q{SELECT procq.defer('new')}, db => 'restored'),
	6, 'the next job id follows the restored ones');
is(sql($node, q{SELECT max(id) = (SELECT count(*) FROM procq.job_events) AND count(*) = 1
	FROM procq.job_events WHERE job_id = 6}, db => 'restored'),
	't', 'the restored history goes on: the new job\'s event follows the restored ones');
sql($node, q{SELECT procq.finish_job(id, 'succeeded') FROM procq.fetch_job()}, db => 'restored');
is(sql($node, 'SELECT pending_parents FROM procq.jobs WHERE id = 2', db => 'restored'),
	0, 'the restored parent releases its child');

$node->stop;
done_testing();
