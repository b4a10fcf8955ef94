# Defect 6 of issue 7: a job's session state is gone before the next job
# starts, whoever deferred either.  One worker, one batch of jobs that
# alternate between roles alice and bob: after alice's job changed some
# kind of session state, bob's job must start from a clean session.
#  - constraint modes: alice's SET CONSTRAINTS ALL DEFERRED must not
#    defer bob's deferrable unique check: bob's duplicate fails bob's job
#    alone (23505) and the rest of the batch commits;
#  - session advisory locks: alice's pg_advisory_lock is released at the
#    end of her job (another session can take it; bob's job does not hold it);
#  - settings changed without LOCAL (set_config(..., false));
#  - prepared statements;
#  - temporary objects;
#  - open cursors (a plpgsql OPEN of a refcursor survives the end of the
#    job's subtransaction: bob must not see or FETCH from alice's).
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('session_reset', conf => [ 'procq.workers = 1', 'procq.batch_size = 100' ],
	workers => 1);
sql($node, q{
CREATE ROLE alice LOGIN NOSUPERUSER;
CREATE ROLE bob LOGIN NOSUPERUSER;
GRANT USAGE ON SCHEMA procq TO alice, bob;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO alice, bob;
CREATE TABLE uniq (x int UNIQUE DEFERRABLE INITIALLY IMMEDIATE);
GRANT SELECT, INSERT ON uniq TO alice, bob;
CREATE TABLE log (job_id bigint, who text DEFAULT current_user);
GRANT SELECT, INSERT ON log TO alice, bob;
SELECT procq.register_handler('defer_all', 'sql', 'SET CONSTRAINTS ALL DEFERRED');
SELECT procq.register_handler('dup', 'sql', 'INSERT INTO public.uniq VALUES (1), (1)');
SELECT procq.register_handler('log', 'sql', 'INSERT INTO public.log (job_id) VALUES ($2)');
SELECT procq.register_handler('adv_lock', 'sql', 'SELECT pg_advisory_lock(4242)');
SELECT procq.register_handler('adv_held', 'sql',
  'SELECT count(*) FROM pg_locks WHERE locktype = ''advisory'' AND pid = pg_backend_pid() AND objid = 4242');
SELECT procq.register_handler('set_wm', 'sql', 'SELECT set_config(''work_mem'', ''77kB'', false)');
SELECT procq.register_handler('get_wm', 'sql', 'SELECT current_setting(''work_mem'')');
SELECT procq.register_handler('prepare', 'sql', 'PREPARE leak AS SELECT 1');
SELECT procq.register_handler('prepared', 'sql', 'SELECT count(*) FROM pg_prepared_statements');
SELECT procq.register_handler('mk_temp', 'sql', 'CREATE TEMP TABLE leak_t (x int)');
CREATE FUNCTION open_cur() RETURNS refcursor LANGUAGE plpgsql AS $$
DECLARE c refcursor := 'leak_cur';
BEGIN OPEN c FOR SELECT 42; RETURN c; END $$;
SELECT procq.register_handler('open_cur', 'sql', 'SELECT public.open_cur()');
SELECT procq.register_handler('cursors', 'sql', 'SELECT count(*) FROM pg_cursors');
SELECT procq.register_handler('temp_seen', 'sql',
  'SELECT count(*) FROM pg_class WHERE relpersistence = ''t'' AND relname = ''leak_t''');
});

# Hold the worker (no handler for 'gate' yet is not enough: use a lock the
# first job waits for) so that every job below is in one batch: defer them
# while the worker is off, then turn it on.
sql($node, q{ALTER SYSTEM SET procq.workers = 0; SELECT pg_reload_conf()});
wait_for($node, 'SELECT count(*) = 0 FROM procq.worker_status', 'the worker did not stop', 60);

my %id;
my @plan = (
	[ 'defer_all', 'alice' ], [ 'dup',       'bob' ],
	[ 'log',       'alice' ], [ 'adv_lock',  'alice' ],
	[ 'adv_held',  'bob' ],   [ 'set_wm',    'alice' ],
	[ 'get_wm',    'bob' ],   [ 'prepare',   'alice' ],
	[ 'prepared',  'bob' ],   [ 'mk_temp',   'alice' ],
	[ 'temp_seen', 'bob' ],   [ 'open_cur',  'alice' ],
	[ 'cursors',   'bob' ]);
for my $p (@plan)
{
	my ($task, $role) = @$p;
	$id{$task} = sql($node, "SELECT procq.defer('$task')", user => $role);
}
my $all = join(',', values %id);
sql($node, q{ALTER SYSTEM SET procq.workers = 1; SELECT pg_reload_conf()});
wait_final($node, 'the jobs of alice and bob', $all, 60)
  or diag(sql($node, "SELECT string_agg(task || ' ' || status, ', ') FROM procq.jobs"));

check_job($node, $id{defer_all}, "alice's SET CONSTRAINTS job succeeded", q{status = 'succeeded'});
check_job($node, $id{dup}, "bob's duplicate failed his job alone, at once (23505)",
	q{status = 'failed' AND error LIKE '%(SQLSTATE 23505)%'});
is(sql($node, 'SELECT count(*) FROM uniq'), '0', "bob's duplicate rows were rolled back");
check_job($node, $id{log}, 'the job after it in the batch succeeded', q{status = 'succeeded'});
is(sql($node, "SELECT count(*) FROM log WHERE job_id = $id{log}"), '1', 'and its effect committed');

check_job($node, $id{adv_held}, "bob's job does not hold alice's session advisory lock",
	q{status = 'succeeded' AND result = '0'});
is(sql($node, 'SELECT pg_try_advisory_lock(4242)'), 't',
	"another session can take alice's advisory lock: the worker released it");
is( sql($node,
		q{SELECT count(*) FROM pg_locks l JOIN procq.worker_status w ON w.pid = l.pid WHERE l.locktype = 'advisory'}),
	'0', 'the worker holds no advisory lock');

check_job($node, $id{get_wm}, "bob's job sees the default work_mem, not alice's",
	q{status = 'succeeded' AND result = '"4MB"'});
check_job($node, $id{prepared}, "bob's job sees no prepared statement of alice's",
	q{status = 'succeeded' AND result = '0'});
check_job($node, $id{temp_seen}, "bob's job sees no temporary table of alice's",
	q{status = 'succeeded' AND result = '0'});
check_job($node, $id{open_cur}, "alice's job opened a cursor", q{status = 'succeeded' AND result = '"leak_cur"'});
check_job($node, $id{cursors}, "bob's job sees no cursor of alice's",
	q{status = 'succeeded' AND result = '0'});

$node->stop;
done_testing();
