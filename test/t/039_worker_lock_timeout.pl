# The background workers' own lock waits are bounded, and a worker waiting
# on a lock still stops when told to (issue 8).  Outside handlers a worker
# holds query cancels (only cancel_job may cancel, and only a handler), so
# a lock_timeout could never fire there: a worker recording its batch's
# outcomes behind a lock that another session's open transaction holds
# waited for as long as that transaction lived.  procq.worker_lock_timeout
# now bounds those waits; a timeout rolls the batch back, which then runs
# again later: it is no failure of its jobs and no death of the worker
# (a job of a batch that failed as a whole 3 times used to be failed as a
# poison job).  And a worker stopped while its shell job runs puts the job
# back before it exits, a step that used to wait, with every interrupt
# held, for the job's lock queue: lowering procq.workers then never
# stopped it.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use ProcqTest;

my $node = procq_node('worker_lock_timeout',
	conf => [ 'procq.workers = 1', 'procq.enable_shell = on',
		"procq.worker_lock_timeout = '200ms'" ],
	workers => 1);
sql($node, 'CREATE TABLE effects (job bigint)');
my $job = sql($node, "SELECT procq.defer('record', lock => 'L')");

# Another session holds lock queue L in an open transaction.
my $holder = $node->background_psql('postgres');
$holder->query_safe("BEGIN; SELECT procq.defer('holder', lock => 'L')");

# The worker runs the job, and waits for L to record its outcome.
my $offset = log_size($node);
register($node, 'record', 'sql', 'INSERT INTO effects VALUES ($2)');
my $timeouts = 0;
my $deadline = time + 60;
while (time < $deadline)
{
	my $log = slurp_file($node->logfile, $offset);
	$timeouts = () = $log =~ /canceling statement due to lock timeout/g;
	last if $timeouts >= 4;
	usleep(100_000);
}
ok($timeouts >= 4, "the worker's wait for lock queue L timed out, again and again ($timeouts times)");
check_job($node, $job, 'the batch rolled back: the job is todo, its attempt not counted, not failed',
	"status = 'todo' AND attempts = 0 AND error IS NULL");
is(sql($node, 'SELECT count(*) FROM effects'), '0', 'the rolled-back batch left no effect');

$holder->query_safe('COMMIT');
wait_final($node, "job $job", $job, 60);
check_job($node, $job, 'once the lock was free the job ran and succeeded (no poison death)',
	"status = 'succeeded' AND attempts = 1 AND error IS NULL");
is(sql($node, 'SELECT count(*) FROM effects'), '1', 'its effect is there exactly once');

# A shell job with lock L2 runs; another session holds L2; the worker is
# stopped (procq.workers lowered): it must exit.
my $n = register_slow($node, 300);
my $slow = sql($node, "SELECT procq.defer('slow', lock => 'L2', max_attempts => 2)");
wait_for($node, "(SELECT status = 'doing' FROM procq.jobs WHERE id = $slow)",
	"shell job $slow did not start");
$holder = $node->background_psql('postgres');
$holder->query_safe("BEGIN; SELECT procq.defer('holder', lock => 'L2')");
sql($node, 'ALTER SYSTEM SET procq.workers = 0; SELECT pg_reload_conf()');
wait_for($node, "(SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'procq worker')",
	'the worker did not exit while another session held its shell job\'s lock queue', 60,
	"SELECT pid, wait_event_type, wait_event, query FROM pg_stat_activity WHERE backend_type = 'procq worker'");
ok(wait_gone("300\\.$n", 10), 'its program is gone');
$holder->query_safe('COMMIT');
$holder->quit;
like(slurp_file($node->logfile, $offset), qr/could not put back shell job $slow before stopping/,
	'the worker gave up putting the job back, and said so');

# A worker again: the job is put back as a dead worker's (its attempt
# counted: the put-back before the exit timed out) and runs again.
sql($node, 'ALTER SYSTEM SET procq.workers = 1; SELECT pg_reload_conf()');
wait_final($node, "shell job $slow", $slow, 60);
check_job($node, $slow, 'the interrupted shell job ran again and succeeded',
	"status = 'succeeded' AND result = '\"second run\"'");

# A shell job's outcome waits for a lock queue another session holds: the
# outcome is kept and recorded once the lock is free, not turned into a
# failure ("its outcome could not be recorded").
my $dir = PostgreSQL::Test::Utils::tempdir();
register($node, 'gate', 'shell',
	"/bin/sh -c 'while [ ! -e $dir/go ]; do sleep 0.1; done; echo \"{\\\"gate\\\": 1}\"'");
my $gate = sql($node, "SELECT procq.defer('gate', lock => 'L3')");
wait_for($node, "(SELECT status = 'doing' FROM procq.jobs WHERE id = $gate)",
	"shell job $gate did not start");
$holder = $node->background_psql('postgres');
$holder->query_safe("BEGIN; SELECT procq.defer('holder', lock => 'L3')");
$offset = log_size($node);
open(my $fh, '>', "$dir/go") or die "cannot create $dir/go: $!";
close($fh);
$deadline = time + 60;
my ($kept, $again) = (0, 0);
while (time < $deadline)
{
	my $log = slurp_file($node->logfile, $offset);
	$kept = () = $log =~ /waited too long for a lock to record the outcome of shell job $gate/g;
	$again = () = $log =~ /canceling statement due to lock timeout/g;
	last if $kept >= 1 && $again >= 3;
	usleep(100_000);
}
ok($kept >= 1 && $again >= 3,
	"recording shell job ${gate}'s outcome timed out and was tried again ($again lock timeouts)");
check_job($node, $gate, 'meanwhile the job is still doing, not failed', "status = 'doing'");
$holder->query_safe('COMMIT');
$holder->quit;
wait_final($node, "shell job $gate", $gate, 60);
check_job($node, $gate, 'its outcome was recorded once the lock was free',
	"status = 'succeeded' AND result = '{\"gate\": 1}'");

$node->stop;
done_testing();
