# Stopping running jobs.  procq.cancel_job(id, abort => true) stops a
# running SQL job (pg_sleep(60)) and a running shell job (sleep 60) well
# before they would end: both end cancelled with 'aborted by
# procq.cancel_job', the shell program is gone, and the same worker goes on
# to the next job; abort => false on a doing job returns false and changes
# nothing.  A fast shutdown with a shell job running sleep 300 completes
# within 30 s (the server never waits on a job), and after the restart the
# job is put back and runs again, the interrupted attempt not counted (a
# clean stop is not a worker death: issue 7, defect 5).  One worker, so "the worker" is
# unambiguous.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;
use Time::HiRes qw(time usleep);

my $node = procq_node('abort',
	conf => [ 'procq.workers = 1', 'procq.enable_shell = on' ],
	workers => 1);
my $n = nonce();
register($node, 'sql_sleep', 'sql', 'SELECT pg_sleep(60)');
register($node, 'sql_next', 'sql', q{SELECT 'next'});
register($node, 'shell_sleep', 'shell', "sleep 60.$n");
register($node, 'shell_next', 'shell', 'echo next');
my $worker_pid = sql($node, 'SELECT pid FROM procq.worker_status');

# abort_and_check(KIND): abort a running KIND_sleep job with a KIND_next
# job queued behind it.
sub abort_and_check
{
	my ($kind) = @_;
	my $job = defer($node, "${kind}_sleep");
	my $next = defer($node, "${kind}_next");
	wait_for($node,
		"(SELECT job_id = $job AND state = 'running $kind' FROM procq.worker_status)",
		"the worker did not start $kind job $job", 60, 'SELECT * FROM procq.worker_status');
	if ($kind eq 'shell')
	{
		# Truly doing (committed as such): abort => false must leave it alone.
		my $ok = 1;
		if (sql($node, "SELECT procq.cancel_job($job, abort => false)") ne 'f')
		{
			diag('cancel_job(abort => false) on a doing shell job did not return false');
			$ok = 0;
		}
		if (!(sql($node, "SELECT status FROM procq.jobs WHERE id = $job") eq 'doing'
				&& sql($node, 'SELECT job_id FROM procq.worker_status') eq $job))
		{
			diag('cancel_job(abort => false) changed the doing job');
			$ok = 0;
		}
		if (pgrep_count("60\\.$n") == 0)
		{
			diag('cancel_job(abort => false) stopped the program');
			$ok = 0;
		}
		ok($ok, 'cancel_job(abort => false) on a doing job returns false and changes nothing');
	}
	sql($node, "SELECT procq.cancel_job($job, abort => true)") eq 't'
	  or fail("cancel_job(abort => true) on running $kind job $job did not return true");
	wait_for($node,
		"(SELECT status <> 'doing' AND status <> 'todo' FROM procq.jobs WHERE id = $job)",
		"aborted $kind job $job did not end within 30 s", 30,
		"SELECT id, status, worker, error FROM procq.jobs WHERE id = $job");
	check_job($node, $job,
		"an aborted running $kind job ends cancelled, 'aborted by procq.cancel_job'",
		"status = 'cancelled' AND error = 'aborted by procq.cancel_job'");
	if ($kind eq 'shell')
	{
		ok(wait_gone("60\\.$n", 10), 'the aborted shell program is gone')
		  or diag('the aborted shell program is still running');
	}
	# A final status, not just "not todo": a shell job is 'doing' (committed)
	# while it runs.
	wait_for($node, "(SELECT status NOT IN ('todo', 'doing') FROM procq.jobs WHERE id = $next)",
		"the worker did not go on to job $next after the abort");
	check_job($node, $next, "the same worker goes on to the next $kind job",
		"status = 'succeeded' AND result = '\"next\"'
         AND worker = (SELECT worker FROM procq.jobs WHERE id = $job)
         AND worker = 'procq worker 1 pid $worker_pid'");
	return;
}
abort_and_check('sql');
abort_and_check('shell');
is(sql($node, 'SELECT pid FROM procq.worker_status'), $worker_pid,
	'the worker process itself survived both aborts')
  or diag('the worker was replaced during the aborts');

# Fast shutdown while a shell job runs sleep 300.  The program sleeps the
# first time it runs for a job, and says so at once the second time.
$n = register_slow($node, 300);
my $job = defer($node, 'slow', undef, 2);
wait_for($node, "(SELECT job_id = $job AND state = 'running shell' FROM procq.worker_status)",
	"the worker did not start shell job $job");
for (1 .. 100)
{
	last if pgrep_count("300\\.$n") > 0;
	usleep(100_000);
}
pgrep_count("300\\.$n") > 0 or fail('sleep 300 did not start');
my $start = time;
$node->stop('fast');
$node->start;
my $took = sprintf('%.1f', time - $start);
ok($took <= 30, "fast shutdown with a running sleep 300 done (and restarted) in $took s")
  or diag("a fast restart with a running shell job took $took s (over 30 s)");
ok(wait_gone("300\\.$n", 10), 'the shell program did not outlive the shutdown')
  or diag('sleep 300 outlived the shutdown: ' . `pgrep -af -- '300\\.$n'`);
wait_for($node, "(SELECT status NOT IN ('todo', 'doing') FROM procq.jobs WHERE id = $job)",
	'the job running at shutdown was not put back and run again', 60,
	"SELECT id, status, attempts, worker, error FROM procq.jobs WHERE id = $job");
check_job($node, $job, 'after the restart the job was put back and ran again (attempts 1: the interrupted one did not count)',
	q{status = 'succeeded' AND attempts = 1 AND result = '"second run"'});

$node->stop;
done_testing();
