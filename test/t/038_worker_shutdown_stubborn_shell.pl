# Shutting down never waits on a shell program that ignores SIGTERM
# (issue 8).  A worker told to exit used to stop its shell job like a
# timeout does: SIGTERM to the process group, then SIGKILL 5 s later, so a
# program that ignores SIGTERM held every fast shutdown (and restart) for
# 5 s.  At shutdown the group now gets SIGKILL at once; the job goes back
# to todo as before (its attempt not counted) and runs again.
#
# The program traps SIGTERM, writes a mark when it gets one, and goes on.
# The test checks that it never got SIGTERM at all: that is what "killed at
# once, no grace" means, and it does not depend on how fast a loaded
# machine stops a server (before the fix, the mark was written within a
# few milliseconds of the SIGTERM, 5 s before the SIGKILL).  How long the
# stop took is printed, not checked.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use ProcqTest;

my $node = procq_node('shutdown_stubborn',
	conf => [ 'procq.workers = 1', 'procq.enable_shell = on' ], workers => 1);
my $dir = PostgreSQL::Test::Utils::tempdir();
my $n = nonce();
register($node, 'stubborn', 'shell',
	"/bin/sh -c 'trap \"echo term >> $dir/term\" TERM; echo up > $dir/up; "
	  . "while :; do sleep 0.$n; done'");
my $job = defer($node, 'stubborn');

my $deadline = time + 60;
usleep(100_000) while !-e "$dir/up" && time < $deadline;
ok(-e "$dir/up", 'the stubborn program is running');
wait_for($node, "(SELECT status = 'doing' FROM procq.jobs WHERE id = $job)",
	"shell job $job was not committed as doing");

my $offset = log_size($node);
my $start = time;
$node->stop('fast');
my $took = time - $start;
note(sprintf('fast stop with the stubborn program took %.2f s (the SIGTERM grace is 5 s)', $took));

ok(!-e "$dir/term", 'the program got no SIGTERM: its group was killed with SIGKILL at once');
ok(wait_gone("sleep 0\\.$n", 10), 'the program is gone');
my $log = slurp_file($node->logfile, $offset);
like($log, qr/killed the process group of shell job $job at once/,
	'the worker log says the group was killed at shutdown');

$node->start;
wait_for($node, "(SELECT status IN ('todo', 'doing') AND attempts <= 1 FROM procq.jobs WHERE id = $job)",
	"shell job $job was not put back (its attempt not counted)");
ok(1, 'after the restart the job is back, its interrupted attempt not counted');
$node->stop;
done_testing();
