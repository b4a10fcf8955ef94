# An error of a whole batch after its handlers ran (while its outcomes are
# recorded, or at commit) must not make the batch run again forever.
#  - A handler's jsonb result that is a column of a table (toasted, over
#    2 kB) is kept by the worker until the batch's outcome UPDATE; a later
#    job of the same batch that truncates the table must not make that
#    UPDATE fail: the result is detoasted inside its own job.
#  - A handler whose outcome UPDATE fails deterministically (it adds a
#    CHECK constraint to procq.jobs that its own succeeded status breaks)
#    ends failed, saying its outcome could not be recorded, after running
#    at most twice (once in its batch, once alone); the innocent job of its
#    batch succeeds.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('batch_error', conf => [ 'procq.workers = 1', 'procq.batch_size = 100' ],
	workers => 1);
sql($node, q{
CREATE TABLE t (j jsonb);
INSERT INTO t SELECT to_jsonb(string_agg(md5(i::text), '')) FROM generate_series(1, 200) i;
CREATE SEQUENCE runs;
CREATE FUNCTION break_outcome() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  PERFORM nextval('public.runs');
  EXECUTE 'ALTER TABLE procq.jobs ADD CONSTRAINT no_success CHECK (status <> ''succeeded'') NOT VALID';
  RETURN 1;
END $$;
SELECT procq.register_handler('big', 'sql', 'SELECT j FROM public.t');
SELECT procq.register_handler('trunc', 'sql', 'TRUNCATE public.t');
SELECT procq.register_handler('break', 'sql', 'SELECT public.break_outcome()');
SELECT procq.register_handler('fine', 'sql', 'SELECT 7');
});

# every job of a scenario in one batch: defer them while the worker is off
sub pause_worker
{
	sql($node, q{ALTER SYSTEM SET procq.workers = 0; SELECT pg_reload_conf()});
	wait_for($node, 'SELECT count(*) = 0 FROM procq.worker_status', 'the worker did not stop', 60);
}

sub resume_worker
{
	sql($node, q{ALTER SYSTEM SET procq.workers = 1; SELECT pg_reload_conf()});
}

pause_worker();
my $log_offset = log_size($node);
my $big = sql($node, q{SELECT procq.defer('big', priority => 10)});
my $trunc = sql($node, q{SELECT procq.defer('trunc', priority => 0)});
resume_worker();
wait_final($node, 'the toasted result and the truncate', "$big,$trunc", 60)
  or diag(sql($node, 'SELECT string_agg(id || task || status, $$, $$) FROM procq.jobs'));
check_job($node, $big, 'the job returning a toasted column succeeded with it',
	q{status = 'succeeded' AND length(result #>> '{}') = 6400});
check_job($node, $trunc, 'the job truncating the table succeeded', q{status = 'succeeded'});
my $log = substr(slurp_file($node->logfile), $log_offset);
unlike($log, qr/missing chunk number|could not open relation/,
	'the outcome UPDATE of their batch did not fail');

pause_worker();
my $break = sql($node, q{SELECT procq.defer('break', priority => 10)});
my $fine = sql($node, q{SELECT procq.defer('fine', priority => 0)});
resume_worker();
wait_final($node, 'the job whose outcome cannot be recorded', "$break,$fine", 60)
  or diag(sql($node, "SELECT last_value FROM runs"));
check_job($node, $break, 'the job whose outcome could not be recorded ended failed, saying why',
	q{status = 'failed' AND error LIKE 'its outcome could not be recorded: %23514%'});
check_job($node, $fine, 'the other job of its batch succeeded', q{status = 'succeeded' AND result = '7'});
cmp_ok(sql($node, 'SELECT last_value FROM runs'), '<=', 2,
	'the failing job ran at most twice (in its batch, then alone)');
is(sql($node, q{SELECT count(*) FROM pg_constraint WHERE conname = 'no_success'}), '0',
	'its effects were rolled back');

my $after = sql($node, q{SELECT procq.defer('fine')});
wait_final($node, 'a job after that', $after, 60);
check_job($node, $after, 'the worker runs jobs after that', q{status = 'succeeded'});

$node->stop;
done_testing();
