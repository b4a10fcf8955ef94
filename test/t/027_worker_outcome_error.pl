# Defect 4 of issue 7: an error while a worker records a shell job's
# outcome must end the job, never leave it doing (its lease is ten years
# long, and its worker lives on, so nothing would ever recover it).  The
# reproducer is a program that prints 100,000 nested arrays: valid JSON,
# but too deep for the parser's stack (54001) while the outcome is being
# recorded.  The job must end failed with an error that says its outcome
# could not be recorded and why; a job of the same task queued behind it
# with the same lock must then run; and so must a plain shell job after it.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('outcome_error',
	conf => [ 'procq.workers = 1', 'procq.enable_shell = on' ], workers => 1);
my $script = $node->basedir . '/deep.sh';
open my $fh, '>', $script or die "could not write $script: $!";
print $fh <<'EOS';
if [ "$PROCQ_ARGS" = '{"deep": false}' ]; then echo '"shallow"'; exit 0; fi
head -c 100000 /dev/zero | tr '\0' '['
head -c 100000 /dev/zero | tr '\0' ']'
EOS
close $fh;
register($node, 'deep', 'shell', "/bin/sh $script");
register($node, 'echo', 'shell', q{/bin/sh -c 'echo 42'});

my $deep = sql($node, q{SELECT procq.defer('deep', '{"deep": true}', lock => 'L')});
my $next = sql($node, q{SELECT procq.defer('deep', '{"deep": false}', lock => 'L')});
wait_final($node, 'the job whose outcome cannot be recorded', $deep, 60)
  or diag(sql($node, "SELECT status, worker, lease_expires_at FROM procq.jobs WHERE id = $deep"));
check_job($node, $deep, 'the job whose outcome could not be recorded ended failed, saying why',
	q{status = 'failed' AND error LIKE 'its outcome could not be recorded: %stack depth limit exceeded%'});
wait_final($node, 'the job behind it in its lock queue', $next, 60);
check_job($node, $next, 'the next job of its lock queue ran', q{status = 'succeeded' AND result = '"shallow"'});

my $echo = defer($node, 'echo');
wait_final($node, 'a shell job after it', $echo, 60);
check_job($node, $echo, 'the worker runs shell jobs after that', q{status = 'succeeded' AND result = '42'});

$node->stop;
done_testing();
