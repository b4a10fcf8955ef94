# procq.retention: the background workers delete old finished jobs, in
# batches, never a parent that a waiting job still depends on.
#
#   - retention off (the default): nothing is deleted;
#   - procq.retention = 1h (after a reload): the jobs that finished more
#     than an hour ago go, the recent ones stay;
#   - procq.retention = 1s (after a reload, without waiting for the
#     previous setting's interval): every finished job goes, in
#     transactions of at most 1,000 jobs each, all made by the worker of
#     slot 1; except a succeeded parent P whose child C still waits on
#     another parent P2;
#   - C then runs with P's result, and once C is finished, C, P and P2 go
#     too.
# A statement-level trigger on procq.jobs records each DELETE: its
# transaction, its backend and how many jobs it deleted.  The job history
# (procq.job_events, issue 10) goes with the deleted jobs, and stays for the
# jobs that are kept.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('retention', conf => ['procq.workers = 2'], workers => 2);
sql($node, q{SELECT procq.register_handler('noop', 'sql', 'SELECT $2')});
sql($node, q{
	CREATE TABLE deletes (xid xid8, app text, jobs bigint);
	CREATE FUNCTION log_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.deletes
		SELECT pg_current_xact_id(),
			(SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()),
			count(*) FROM gone;
		RETURN NULL;
	END $$;
	CREATE TRIGGER log_deletes AFTER DELETE ON procq.jobs
		REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION log_deletes();
});

# 2,500 jobs run by the workers; ids 1 to 2,500.
sql($node, q{SELECT count(procq.defer('noop')) FROM generate_series(1, 2500)});
wait_for($node, q{SELECT count(*) = 2500 FROM procq.jobs WHERE status = 'succeeded'},
	'timed out waiting for the workers to run 2,500 jobs', 120,
	'SELECT status, count(*) FROM procq.jobs GROUP BY 1')
  or BAIL_OUT('the workers did not run the jobs');

# P (run by the workers), P2 (no handler: stays todo), C waits on both.
my $p = defer($node, 'noop');
my $p2 = defer($node, 'external');
my $c = sql($node, "SELECT procq.defer('external', depends_on => ARRAY[$p, $p2])");
wait_for($node, "SELECT status = 'succeeded' FROM procq.jobs WHERE id = $p",
	"timed out waiting for parent $p to run", 60)
  or BAIL_OUT('the parent did not run');

# Jobs 1 to 1,500 and P finished two hours ago.
sql($node,
	"UPDATE procq.jobs SET finished_at = finished_at - interval '2 hours' WHERE id <= 1500 OR id = $p");

# Off by default: a few poll intervals later, nothing was deleted.
sleep 2;
is(sql($node, 'SELECT count(*) FROM procq.jobs'), 2503, 'with procq.retention = 0 no job is deleted');

# 1h: the 1,500 old jobs go, the 1,000 recent ones stay, and so does P.
sql($node, q{ALTER SYSTEM SET procq.retention = '1h'; SELECT pg_reload_conf()});
ok( wait_for(
		$node, 'SELECT NOT EXISTS (SELECT 1 FROM procq.jobs WHERE id <= 1500)',
		'timed out waiting for procq.retention = 1h to delete the jobs finished 2 hours ago', 60,
		"SELECT count(*) FROM procq.jobs WHERE id <= 1500"),
	'procq.retention = 1h deleted the jobs that finished 2 hours ago');
is(sql($node, 'SELECT count(*) FROM procq.jobs WHERE id BETWEEN 1501 AND 2500'),
	1000, '... and kept the 1,000 that finished less than an hour ago');
check_job($node, $p, "... and kept parent $p, old but needed by job $c", 'true');
is(sql($node, 'SELECT count(*) FROM procq.job_events WHERE job_id <= 1500'),
	0, '... and the events of the deleted jobs went with them');
is( sql($node, q{SELECT count(DISTINCT job_id) FROM procq.job_events
	WHERE job_id BETWEEN 1501 AND 2500 AND event = 'succeeded'}),
	1000, '... while the kept jobs keep their history');

# 1s: all other finished jobs go, in batches, from worker 1.
sql($node, q{ALTER SYSTEM SET procq.retention = '1s'; SELECT pg_reload_conf()});
ok( wait_for(
		$node, 'SELECT NOT EXISTS (SELECT 1 FROM procq.jobs WHERE id <= 2500)',
		'timed out waiting for procq.retention = 1s to delete the recent jobs', 60,
		"SELECT count(*) FROM procq.jobs WHERE id <= 2500"),
	'procq.retention = 1s deleted the other finished jobs');
my ($jobs, $xacts, $most, $who) = split /\|/, sql(
	$node, q{SELECT sum(n), count(*), max(n), string_agg(DISTINCT app, ', ')
		FROM (SELECT xid, app, sum(jobs) AS n FROM deletes GROUP BY 1, 2) t});
is($jobs, 2500, 'the DELETEs seen by the trigger deleted 2,500 jobs');
ok($xacts >= 3, "... in several transactions ($xacts)");
ok($most <= 1000, "... of at most 1,000 jobs each (at most $most)");
is($who, 'procq worker 1', '... all made by worker 1');

# P stays while C waits; C then runs with P's result.
is(sql($node, "SELECT string_agg(id || ' ' || status, ', ' ORDER BY id) FROM procq.jobs"),
	"$p succeeded, $p2 todo, $c todo", "parent $p stays while its child $c waits on $p2");
sleep 2;
is(sql($node, "SELECT count(*) FROM procq.jobs"), 3, "... also in the next passes");
sql($node, "SELECT procq.finish_job(id, 'succeeded') FROM procq.fetch_job(worker => 'ext')");
is(sql($node, "SELECT id FROM procq.fetch_job(worker => 'ext')"), $c, "child $c is released");
is(sql($node, "SELECT procq.parent_results($c) ->> '$p'"), $p, "... with parent ${p}'s result");
sql($node, "SELECT procq.finish_job($c, 'succeeded')");

# Once C is finished and older than 1s, the three go.
ok( wait_for(
		$node, 'SELECT NOT EXISTS (SELECT 1 FROM procq.jobs)',
		'timed out waiting for procq.retention to delete the finished family', 60,
		'SELECT id, status, finished_at FROM procq.jobs'),
	"once child $c finished, it and its parents $p and $p2 were deleted");
is(sql($node, 'SELECT count(*) FROM procq.job_events'), 0, '... and no event is left');

$node->stop;
done_testing();
