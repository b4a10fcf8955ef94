# The background workers and procq.retention with look-alikes planted by
# the owner of procq.database (not a superuser; it owns public and may
# create schemas) and a hostile search_path for every session of that
# database, the workers' included (ALTER DATABASE ... SET search_path, which
# the owner may do): evil, public, pg_temp, procq, pg_catalog.  The
# look-alikes (test/hostile/lookalikes.sql) record every call, in a table,
# a sequence (not rolled back with a failed job) and a WARNING in the
# server log.  SQL, failing and shell handlers, dependencies, a lock, a
# scheduled job, retries and cancellation all come out as without them,
# each SQL job's effect exactly once, retention deletes every finished job,
# and no look-alike is ever called.  The handlers' own statements are
# schema-qualified: their names resolve through the session's search_path
# like any statement (see README, Background workers).
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use ProcqTest;

my $node = procq_node('hostile_workers',
	preload => 0, no_extension => 1,
	conf => [
		"shared_preload_libraries = 'procq'", "procq.database = 'app'",
		'procq.workers = 2', 'procq.poll_interval = 200ms', 'procq.retry_delay = 0',
		'procq.enable_shell = on'
	]);

# Every statement of the test itself runs with a pinned search_path: the
# database's default is the hostile one.
my $pin = 'SET search_path = pg_catalog, pg_temp; ';

sub app
{
	my ($sql, %opts) = @_;
	return sql($node, $pin . $sql, db => 'app', %opts);
}

# wait_app(DESC, SQL): poll SQL (a boolean) in app until true, up to 90 s.
sub wait_app
{
	my ($desc, $cond, $diag) = @_;
	my $deadline = time + 90;

	while (1)
	{
		my ($ret, $out) = $node->psql('app', $pin . "SELECT ($cond)::boolean", on_error_stop => 1);
		return 1 if $ret == 0 && $out eq 't';
		last if time >= $deadline;
		usleep(200_000);
	}
	fail("timed out after 90 s waiting for $desc");
	diag(app($diag)) if $diag;
	return 0;
}

sql($node, 'CREATE ROLE appowner LOGIN NOSUPERUSER');
sql($node, 'CREATE DATABASE app OWNER appowner');
app(q{
	CREATE EXTENSION procq;
	GRANT USAGE ON SCHEMA procq TO appowner;
	GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO appowner;
	CREATE TABLE public.effects (job bigint NOT NULL, args jsonb);
	ALTER TABLE public.effects OWNER TO postgres;
	GRANT SELECT, INSERT ON public.effects TO appowner;
});

# appowner plants its look-alikes and makes the hostile search_path the
# database's default; the restart makes the workers connect again with it.
app('CREATE SCHEMA evil', user => 'appowner');
app(slurp_file('test/hostile/lookalikes.sql'), user => 'appowner');
app('ALTER DATABASE app SET search_path = evil, public, pg_temp, procq, pg_catalog',
	user => 'appowner');
$node->restart;
wait_app('2 idle workers',
	"(SELECT count(*) FILTER (WHERE state = 'idle') FROM procq.worker_status) = 2");
is( $node->safe_psql('app', 'SHOW search_path'),
	'evil, public, pg_temp, procq, pg_catalog',
	"the database's sessions get the hostile search_path");

# The look-alikes are live: an unqualified call in a session of app calls one.
$node->safe_psql('app', 'SELECT now()', extra_params => ['-U', 'appowner']);
is(app('SELECT string_agg(what, \', \') FROM evil.calls'),
	'evil.now()', "a session's own unqualified call reaches a look-alike");
app(q{DELETE FROM evil.calls; SELECT setval('evil.calls_seq', 1, false)});
my $log_offset = log_size($node);

# Handlers, registered by the superuser, statements qualified.
app(q{
	SELECT procq.register_handler('ok', 'sql',
		'INSERT INTO public.effects (job, args) VALUES ($2, $1) RETURNING job');
	SELECT procq.register_handler('bad', 'sql',
		'INSERT INTO public.effects (job, args) VALUES (NULL, $1)');
	SELECT procq.register_handler('sh', 'shell', '/bin/echo 17');
});

# The jobs, deferred by appowner in a session with the hostile search_path.
my $later = app(q{SELECT (clock_timestamp() + interval '2 seconds')::text});
my $defer = sub {
	my ($args) = @_;
	return $node->safe_psql('app', "SELECT procq.defer($args)",
		extra_params => ['-U', 'appowner']);
};
my $a = $defer->(q{'ok', args => '{"n": 1}'});
my $b = $defer->(qq{'ok', depends_on => '{$a}', lock => 'K'});
my $c = $defer->(qq{'sh', depends_on => '{$a}', lock => 'K'});
my $d = $defer->(qq{'ok', depends_on => '{$b,$c}', queueing_lock => 'Q'});
my $f = $defer->(q{'bad', max_attempts => 2});
my $g = $defer->(qq{'ok', depends_on => '{$f}'});
my $h = $defer->(qq{'ok', scheduled_at => '$later'});
my @w = split /\n/, $node->safe_psql('app',
	q{SELECT job_id FROM procq.defer_workflow('[{"key": "x", "task": "ok"}, {"key": "y", "task": "sh", "depends_on": ["x"]}]')},
	extra_params => ['-U', 'appowner']);
my @fan = split /\n/, $node->safe_psql('app',
	qq{SELECT procq.defer_jobs('ok', '{"{}", "{}", "{}"}', depends_on => '{$w[1]}')},
	extra_params => ['-U', 'appowner']);
my $all = join(',', $a, $b, $c, $d, $f, $g, $h, @w, @fan);

wait_app('the workers to finish every job',
	"(SELECT bool_and(status IN ('succeeded', 'failed', 'cancelled')) FROM procq.jobs WHERE id IN ($all))",
	'SELECT id, task, status, attempts, error FROM procq.jobs ORDER BY id');

is( app(qq{SELECT string_agg(format('%s %s %s %s', id, status, attempts, coalesce(result::text, '-')), '; ' ORDER BY id)
	FROM procq.jobs WHERE id IN ($a, $b, $c, $d, $h, $w[0], $w[1])}),
	"$a succeeded 1 $a; $b succeeded 1 $b; $c succeeded 1 17; $d succeeded 1 $d; "
	  . "$h succeeded 1 $h; $w[0] succeeded 1 $w[0]; $w[1] succeeded 1 17",
	'SQL and shell jobs ran in order with their results')
  or diag(app('SELECT id, task, status, error FROM procq.jobs ORDER BY id'));
is(app("SELECT status || ' ' || attempts || ' ' || (error LIKE '%23502%') FROM procq.jobs WHERE id = $f"),
	'failed 2 true', 'the failing job was retried, then failed with its error');
is(app("SELECT status || ': ' || error FROM procq.jobs WHERE id = $g"),
	"cancelled: parent job $f failed", 'its child was cancelled');
is(app(q{SELECT count(*) FILTER (WHERE status = 'succeeded') FROM procq.jobs WHERE task = 'ok'}),
	8, 'every ok job but the failed one\'s child succeeded');
is( app(q{SELECT count(*) || ' ' || count(DISTINCT job) FROM public.effects}),
	'8 8', "each SQL job's effect exactly once");
is( app(q{SELECT bool_and(started_at >= (SELECT max(p.finished_at) FROM procq.job_dependencies dd
		JOIN procq.jobs p ON p.id = dd.depends_on WHERE dd.job_id = j.id))
	FROM procq.jobs j WHERE EXISTS (SELECT FROM procq.job_dependencies dd WHERE dd.job_id = j.id)
	AND status = 'succeeded'}),
	't', 'no job started before its parents finished');

# procq.retention deletes them all (children before parents).
app(q{ALTER SYSTEM SET procq.retention = '1s'; SELECT pg_reload_conf()});
wait_app('procq.retention to delete every finished job',
	'(SELECT count(*) = 0 FROM procq.jobs)',
	'SELECT id, task, status, finished_at FROM procq.jobs ORDER BY id');

# And nothing procq did called a look-alike.
is(app(q{SELECT count(*) FROM evil.calls}), 0, 'no look-alike was called (table)');
is(app(q{SELECT is_called FROM evil.calls_seq}), 'f', 'no look-alike was called (sequence)');
unlike(substr(slurp_file($node->logfile), $log_offset), qr/procq called look-alike/,
	'no look-alike was called (server log)');

$node->stop;
done_testing();
