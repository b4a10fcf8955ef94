# The background workers' claim reads only the ready jobs of roles whose
# privileges a handler's registrant has.  Beside 50,000 ready jobs of alice
# of task t, a handler of t registered by bob (who may not act as alice)
# runs bob's jobs and leaves alice's alone, and its claims read none of
# alice's entries of the per-task ready index: before the index led with
# deferred_by, each claim walked all 50,000 of them (about 57 ms) to reject
# each with pg_has_role.  Measured with the index statistics the workers
# report (idx_tup_read of jobs_ready_task_idx), not with timings.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('claim_roles', conf => ['procq.workers = 2'], workers => 2);

sql($node, q{
CREATE ROLE alice LOGIN NOSUPERUSER;
CREATE ROLE bob LOGIN NOSUPERUSER;
GRANT USAGE ON SCHEMA procq TO alice, bob;
GRANT EXECUTE ON FUNCTION procq.defer, procq.defer_jobs TO alice, bob;
-- bob administers handlers (README, Privileges)
GRANT EXECUTE ON FUNCTION procq.register_handler, procq.unregister_handler TO bob;
GRANT SELECT, INSERT, UPDATE, DELETE ON procq.handlers TO bob;
});
sql($node, q{SELECT count(*) FROM procq.defer_jobs('t', array_fill('{}'::jsonb, ARRAY[50000]))},
	user => 'alice');
sql($node, q{VACUUM ANALYZE procq.jobs});
sql($node, q{SELECT procq.register_handler('t', 'sql', 'SELECT current_user')}, user => 'bob');

my $stats = q{SELECT idx_scan || ' ' || idx_tup_read FROM pg_stat_user_indexes
  WHERE indexrelid = 'procq.jobs_ready_task_idx'::regclass};
my ($scan0, $read0) = split ' ', sql($node, $stats);

# bob's jobs, a few at a time, so that the workers claim many times
my @ids;
for my $round (1 .. 10)
{
	push @ids, split /\n/, sql($node, q{SELECT procq.defer_jobs('t', array_fill('{}'::jsonb, ARRAY[5]))},
		user => 'bob');
	wait_final($node, "bob's jobs of round $round", join(',', @ids));
}
is(sql($node, 'SELECT count(*) FROM procq.jobs WHERE id IN (' . join(',', @ids) . q{) AND status = 'succeeded' AND result = '"bob"'}),
	50, "bob's 50 jobs ran, as bob");
# the workers report their statistics at the end of their transactions (at
# most once a second): wait until the claims above show up
wait_for($node, "(SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = 'procq.jobs_ready_task_idx'::regclass) >= $scan0 + 10",
	'the workers reported their claims in pg_stat_user_indexes', 60, $stats);
my ($scan1, $read1) = split ' ', sql($node, $stats);
my $scans = $scan1 - $scan0;
my $read = $read1 - $read0;
note("claims' scans of jobs_ready_task_idx: $scans, entries read: $read");
cmp_ok($read, '<', 10_000,
	"the claims read fewer index entries than a fifth of alice's ready jobs (one old claim read all 50,000)");

# (after the measurement: this count may read the same index)
is(sql($node, q{SELECT count(*) FROM procq.jobs WHERE deferred_by = 'alice'::regrole AND status = 'todo' AND attempts = 0}),
	50000, "alice's 50,000 jobs are untouched");

$node->stop;
done_testing();
