# A background worker records a shell job's outcome only for the attempt
# it ran (issue 8, fencing).  A shell job is committed as doing before its
# program runs, and its outcome is written in a second transaction; in
# between, the job can leave the worker: here its lease is made to run out
# (as a DBA could), recover_stalled puts it back, and an external worker
# fetches it again (attempt 2) under the background worker's own name, the
# one thing the outcome UPDATE used to check besides "doing".  When the
# program then ends, the background worker must leave the job to attempt 2:
# still doing, no result, the external worker finishes it with its attempt.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('outcome_fenced',
	conf => [ 'procq.workers = 1', 'procq.enable_shell = on' ],
	workers => 1);
my $dir = PostgreSQL::Test::Utils::tempdir();
my $go = "$dir/go";
register($node, 'gate', 'shell',
	"/bin/sh -c 'while [ ! -e $go ]; do sleep 0.1; done; echo \"{\\\"by\\\": \\\"worker\\\"}\"'");
my $job = defer($node, 'gate', undef, 3);
wait_for($node, "(SELECT count(*) = 1 FROM procq.worker_status WHERE job_id = $job)",
	"the worker did not start shell job $job");
wait_for($node, "(SELECT status = 'doing' FROM procq.jobs WHERE id = $job)",
	"shell job $job was not committed as doing");
my $name = sql($node, "SELECT worker FROM procq.jobs WHERE id = $job");
my $done = sql($node, 'SELECT jobs_done FROM procq.worker_status');

# The job leaves the worker and is fetched again under the worker's name.
sql($node, "UPDATE procq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $job");
is(sql($node, 'SELECT procq.recover_stalled()'), '1', 'recover_stalled put the job back');
is(sql($node, "SELECT id || ' ' || attempts FROM procq.fetch_job(worker => "
	  . quote_literal($name) . ", tasks => ARRAY['gate'])"),
	"$job 2", 'an external worker fetched it again, attempt 2');

# The program ends; the worker records (or not) its outcome.
open(my $fh, '>', $go) or die "cannot create $go: $!";
close($fh);
wait_for($node, "(SELECT jobs_done > $done AND state = 'idle' FROM procq.worker_status)",
	'the worker did not finish with the shell job', 60, 'SELECT * FROM procq.worker_status');
check_job($node, $job, 'the worker left attempt 2 alone',
	"status = 'doing' AND attempts = 2 AND result IS NULL");
is(sql($node, "SELECT procq.finish_job($job, 'succeeded', '{\"by\": \"external\"}', attempt => 2)"),
	'succeeded', 'the external worker finishes its attempt');
check_job($node, $job, 'the job has the external worker\'s result',
	"status = 'succeeded' AND result = '{\"by\": \"external\"}'");

$node->stop;
done_testing();
