# procq.cancel_job(id, abort => true) racing with the end of the job it
# aborts.  Whatever the timing, the call's answer must be the truth: when
# it returns true the job ends cancelled, when it returns false the job
# was not aborted, and the abort never hits another job.  Before the fix,
# the worker was signalled after its slot lock was released (the signal
# could cancel the next job's statement, which then failed with
# "canceling statement due to user request"), and an abort that landed
# after the handler's statement, or after the shell program, ended was
# dropped: the job succeeded although cancel_job had returned true.
#
# First, without a race: a SIGINT that no abort request names, as one from
# a cancel_job whose job has ended by the time it arrives (the same as
# pg_cancel_backend), does not cancel the SQL job that runs.
#
# Then one worker runs many short jobs while a session aborts some of the
# jobs that procq.worker_status shows, after a random pause of about a
# job's length (so the aborts land anywhere in a job's life, and after
# it), and at times the job after it; every call and its answer are
# logged.  SQL jobs
# first, then shell jobs.  Bounded: each round stops after 2 minutes.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;
use Time::HiRes qw(usleep);

my $node = procq_node('abort_race',
	conf => [ 'procq.workers = 1', 'procq.enable_shell = on' ],
	workers => 1);
my $worker_pid = sql($node, 'SELECT pid FROM procq.worker_status');
# quick_sql sleeps 1 ms: the set-based workers run a bare SELECT 1 in a few
# microseconds, too short for the aborts below ever to find it running.
register($node, 'quick_sql', 'sql', 'SELECT pg_sleep(0.001)');
register($node, 'quick_shell', 'shell', 'true');
register($node, 'sql_pause', 'sql', 'SELECT pg_sleep(3)');
sql($node, 'CREATE TABLE abort_log (job_id bigint, returned boolean)');

my $job = defer($node, 'sql_pause');
wait_for($node, "(SELECT job_id = $job AND state = 'running sql' FROM procq.worker_status)",
	"the worker did not start SQL job $job");
usleep(500_000);    # into its pg_sleep
is(sql($node, "SELECT pg_cancel_backend($worker_pid)"), 't', 'SIGINT sent to the worker');
wait_final($node, "SQL job $job", $job, 60);
check_job($node, $job, 'a SIGINT that no abort request names does not cancel the running job',
	"status = 'succeeded'");

# race(TASK, JOBS, PAUSE_MS, SHARE): defer JOBS jobs of TASK and abort
# about SHARE of those seen running; then check every job against the
# answers cancel_job gave.
sub race
{
	my ($task, $jobs, $pause_ms, $share) = @_;
	my $log_offset = log_size($node);
	my $first = sql($node,
		"SELECT min(id) FROM (SELECT procq.defer('$task') AS id FROM generate_series(1, $jobs)) d");
	my $last = $first + $jobs - 1;
	my $ids = "SELECT id FROM procq.jobs WHERE id BETWEEN $first AND $last";

	sql($node, <<"SQL");
DO \$\$
DECLARE
    j bigint;
    seen bigint := 0;
    deadline timestamptz := clock_timestamp() + interval '2 minutes';
BEGIN
    WHILE clock_timestamp() < deadline
          AND EXISTS (SELECT 1 FROM procq.jobs WHERE id BETWEEN $first AND $last
                      AND status IN ('todo', 'doing')) LOOP
        SELECT job_id INTO j FROM procq.worker_status WHERE job_id IS NOT NULL;
        CONTINUE WHEN j IS NULL OR j NOT BETWEEN $first AND $last OR j = seen;
        seen := j;
        CONTINUE WHEN random() >= $share;
        PERFORM pg_sleep(random() * $pause_ms / 1000.0);
        IF random() < 0.1 AND j < $last THEN
            j := j + 1;
        END IF;
        INSERT INTO abort_log VALUES (j, procq.cancel_job(j, abort => true));
    END LOOP;
END
\$\$
SQL
	wait_final($node, "the $task jobs", $ids, 60);

	my $aborted = sql($node,
		"SELECT count(DISTINCT job_id) FROM abort_log WHERE returned AND job_id BETWEEN $first AND $last");
	my $calls = sql($node,
		"SELECT count(*) FROM abort_log WHERE job_id BETWEEN $first AND $last");
	my $done = sql($node, "SELECT count(*) FROM ($ids AND status = 'succeeded') s");
	note("$task: $calls aborts, $aborted jobs aborted, $done of $jobs succeeded");
	ok($aborted > 0 && $done > 0, "$task: some jobs were aborted, others succeeded")
	  or diag("$aborted jobs aborted and $done succeeded: the race did not run");

	my $failed = sql($node,
		"SELECT string_agg(format('%s: %s', id, error), E'\\n') FROM ($ids AND status = 'failed') s"
		  . " JOIN procq.jobs USING (id)");
	is($failed, '', "$task: no job failed (an abort never hits another job)");

	my $dropped = sql($node, <<"SQL");
SELECT string_agg(format('%s %s (%s)', id, status, error), E'\\n')
  FROM procq.jobs j
 WHERE id BETWEEN $first AND $last AND status <> 'cancelled'
   AND EXISTS (SELECT 1 FROM abort_log l WHERE l.job_id = j.id AND l.returned)
SQL
	is($dropped, '', "$task: every job cancel_job(abort => true) returned true for ends cancelled");

	my $untold = sql($node, <<"SQL");
SELECT string_agg(format('%s %s (%s)', id, status, error), E'\\n')
  FROM procq.jobs j
 WHERE id BETWEEN $first AND $last AND status = 'cancelled'
   AND NOT EXISTS (SELECT 1 FROM abort_log l WHERE l.job_id = j.id AND l.returned)
SQL
	is($untold, '', "$task: every cancelled job had a cancel_job call that returned true");

	my @errors = grep { /ERROR:/ } split /\n/, substr(slurp_file($node->logfile), $log_offset);
	is(scalar(@errors), 0, "$task: the worker logged no error")
	  or diag(join("\n", @errors[ 0 .. ($#errors < 9 ? $#errors : 9) ]));
	return;
}

race('quick_sql', 2000, 2, 1);
race('quick_shell', 300, 10, 0.5);
is(sql($node, 'SELECT pid FROM procq.worker_status'), $worker_pid,
	'the same worker ran every job');

$node->stop;
done_testing();
