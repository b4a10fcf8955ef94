# procq.heartbeat on a job that a background worker runs must not shorten
# its lease.  A shell job is committed as doing with a lease longer than
# any timeout (the workers recover the jobs of dead workers themselves);
# a heartbeat once replaced that lease with procq.lease_duration from now,
# which any caller can SET short, and recover_stalled then put the job
# back while its program still ran, and the other worker ran it a second
# time.  Two workers, so that a second run would happen; the slow handler
# prints "second run" when it runs again for the same job.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('heartbeat_lease',
	conf => [ 'procq.workers = 2', 'procq.enable_shell = on' ],
	workers => 2);
my $n = register_slow($node, 10);
my $job = defer($node, 'slow', undef, 2);
wait_for($node, "(SELECT count(*) = 1 FROM procq.worker_status WHERE job_id = $job)",
	"no worker started shell job $job");
wait_for($node, "(SELECT status = 'doing' FROM procq.jobs WHERE id = $job)",
	"shell job $job was not committed as doing");
my $lease = sql($node, "SELECT lease_expires_at FROM procq.jobs WHERE id = $job");

# A heartbeat with a one-second lease_duration, as anyone may SET it.
my $beat = sql($node,
	"SET procq.lease_duration = '1s'; SELECT procq.heartbeat($job) = '$lease'::timestamptz");
is($beat, 't', 'heartbeat on a worker\'s shell job returns its lease unchanged');
check_job($node, $job, 'the heartbeat did not shorten the lease',
	"lease_expires_at = '$lease'::timestamptz AND lease_expires_at > now() + interval '1 day'");

# Past that one second, recovering stalled jobs must find nothing.
sleep 2;
is(sql($node, 'SELECT procq.recover_stalled()'), '0',
	'recover_stalled does not take back the running shell job');

wait_final($node, "shell job $job", $job, 60);
check_job($node, $job, 'the shell job ran once and succeeded',
	"status = 'succeeded' AND attempts = 1 AND result IS NULL");
ok(wait_gone("10\\.$n", 10), 'no run of the program is left');

$node->stop;
done_testing();
