# procq's background workers survive crashes without losing or repeating
# work.  (a) A worker killed with SIGKILL in the middle of a batch of 100
# SQL jobs (the postmaster crash-restarts) and (b) an immediate server stop
# under load: afterwards every job has succeeded and its effect, a row keyed
# by job id, exists exactly once (a second run would fail the job with a
# unique violation), and no job is stuck in doing.  (c) Shell jobs in flight
# during a crash restart: one with max_attempts 2 goes back to todo and runs
# again (attempts 2), one with max_attempts 1 fails with 'its procq worker
# died while running it'; their programs do not outlive the crashed workers.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;
use Time::HiRes qw(usleep);

my $node = procq_node('crash',
	conf => [ 'procq.workers = 2', 'procq.enable_shell = on', 'procq.batch_size = 100' ],
	workers => 2);
sql($node, q{CREATE TABLE effects (job_id bigint PRIMARY KEY, phase text NOT NULL);
     CREATE FUNCTION effect(job bigint, phase text) RETURNS bigint LANGUAGE sql AS
       'INSERT INTO public.effects VALUES (job, phase); SELECT pg_sleep(0.01); SELECT job'});
register($node, 'effect', 'sql', q{SELECT public.effect($2, $1->>'phase')});

# A check the rest of the test cannot go on without failed.
sub give_up
{
	my ($msg) = @_;
	fail($msg);
	done_testing();
	exit;
}

# defer_load(PHASE): defer 300 effect jobs of PHASE in one transaction, wait
# until a worker runs one; return the pid of that worker.
sub defer_load
{
	my ($phase) = @_;
	sql($node, "SELECT count(procq.defer('effect', jsonb_build_object('phase', '$phase', 'n', g)))
           FROM generate_series(1, 300) g");
	for (1 .. 600)
	{
		my $pid = sql($node,
			"SELECT pid FROM procq.worker_status WHERE state = 'running sql' LIMIT 1");
		return $pid if $pid ne '';
		usleep(50_000);
	}
	give_up("no worker started running the phase $phase jobs within 30 s");
}

# check_load(PHASE): every job of PHASE succeeded, with its effect exactly
# once.
sub check_load
{
	my ($p) = @_;
	my $phase = "args->>'phase' = '$p'";
	wait_for($node,
		"(SELECT count(*) FROM procq.jobs WHERE $phase AND status <> 'succeeded') = 0",
		"phase $p: not every job succeeded after the restart", 60,
		"SELECT status, count(*), min(error) FROM procq.jobs WHERE $phase GROUP BY 1");
	my $v = sql($node,
		"SELECT format('%s jobs, %s effects, %s jobs without effect, %s failed, %s with 23505, %s doing',
               (SELECT count(*) FROM procq.jobs WHERE $phase),
               (SELECT count(*) FROM effects WHERE phase = '$p'),
               (SELECT count(*) FROM procq.jobs j WHERE $phase
                  AND NOT EXISTS (SELECT FROM effects e WHERE e.job_id = j.id AND e.phase = '$p')),
               (SELECT count(*) FROM procq.jobs WHERE $phase AND status = 'failed'),
               (SELECT count(*) FROM procq.jobs WHERE $phase AND error LIKE '%23505%'),
               (SELECT count(*) FROM procq.jobs WHERE status = 'doing'))");
	is($v, '300 jobs, 300 effects, 0 jobs without effect, 0 failed, 0 with 23505, 0 doing',
		"phase $p: all 300 jobs succeeded, each effect exactly once, none failed or doing");
}

# (a) SIGKILL one worker while the batches run.
{
	my $pid = defer_load('a');
	my $before = sql($node,
		"SELECT count(*) FROM procq.jobs WHERE args->>'phase' = 'a' AND status = 'succeeded'");
	my $off = log_size($node);
	kill 'KILL', $pid;
	my $ok = 1;
	if ($before >= 300)
	{
		diag('phase a: all jobs were done before the kill');
		$ok = 0;
	}
	$ok = 0 unless wait_crash($node, $pid, $off);
	ok($ok,
		"phase a: worker $pid killed with $before of 300 jobs committed; the server crash-restarted");
	check_load('a');
}

# (b) Immediate stop (a crash: WAL recovery at start) under load.
{
	defer_load('b');
	my $before = sql($node,
		"SELECT count(*) FROM procq.jobs WHERE args->>'phase' = 'b' AND status = 'succeeded'");
	$node->stop('immediate');
	$node->start;
	ok($before < 300, "phase b: immediate stop with $before of 300 jobs committed, restarted")
	  or diag('phase b: all jobs were done before the stop');
	check_load('b');
}

# (c) Shell jobs in flight during a crash restart.  The program sleeps 30 s
# the first time it runs for a job, and says so at once the second time.
{
	my $n = register_slow($node, 30);
	my $marker = "30\\.$n";
	my $again = defer($node, 'slow', undef, 2);
	my $once = defer($node, 'slow', undef, 1);
	wait_for($node,
		"(SELECT count(*) FROM procq.jobs WHERE id IN ($again, $once) AND status = 'doing') = 2
          AND (SELECT count(*) FROM procq.worker_status WHERE state = 'running shell') = 2",
		'the two shell jobs did not both start', 60, 'SELECT * FROM procq.worker_status');
	for (1 .. 100)
	{
		last if pgrep_count($marker) == 2;
		usleep(100_000);
	}
	my $ok = 1;
	if (pgrep_count($marker) != 2)
	{
		diag("the two sleep 30 programs are not running: " . `pgrep -af -- '$marker'`);
		$ok = 0;
	}
	my $pid = sql($node, "SELECT pid FROM procq.worker_status WHERE job_id = $again");
	give_up("no worker runs job $again") if $pid eq '';
	my $off = log_size($node);
	kill 'KILL', $pid;
	if (!wait_gone($marker, 15))
	{
		diag("a sleep 30 of a crashed worker is still running 15 s later: "
			  . `pgrep -af -- '$marker'`);
		$ok = 0;
	}
	ok($ok, 'no sleep 30 survives the crashed workers (SIGKILLed and SIGQUIT ones)');
	wait_crash($node, $pid, $off);
	wait_for($node,
		"(SELECT count(*) FROM procq.jobs WHERE id IN ($again, $once) AND status IN ('todo', 'doing')) = 0",
		'the shell jobs of the crashed workers were not put back and finished', 60,
		"SELECT id, status, attempts, worker, error FROM procq.jobs WHERE id IN ($again, $once)");
	check_job($node, $again,
		'a shell job with attempts left ran again after the crash (attempts 2)',
		q{status = 'succeeded' AND attempts = 2 AND result = '"second run"'});
	check_job($node, $once, 'a shell job out of attempts failed: its procq worker died',
		"status = 'failed' AND attempts = 1 AND error = 'its procq worker died while running it'");
}

$node->stop;
done_testing();
