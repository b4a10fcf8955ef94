# A non-superuser who may create schemas in procq.database (its owner, not
# a superuser) creates a schema named procq of its own before procq is
# installed there, with look-alike tables: a job "deferred by" the
# bootstrap superuser and a "handler" for it, "registered" by the
# superuser, that would make the owner a superuser.  The background
# workers, which wait for procq to be installed, must not take that schema
# for procq: they wait until the extension itself is there, and CREATE
# EXTENSION refuses to install procq into a schema such a role owns (it
# could rename procq's schema away and put its look-alike in its place).
#
# The database is made from a template that already holds the look-alike,
# so that the workers never see the database without it.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use ProcqTest;

my $node = procq_node('hostile_schema',
	preload => 0, no_extension => 1,
	conf => [
		"shared_preload_libraries = 'procq'", "procq.database = 'app'",
		'procq.workers = 1', 'procq.poll_interval = 200ms'
	]);

# plant($node, DB): appowner's look-alike of procq in DB.
sub plant
{
	my ($node, $db) = @_;
	sql($node, q{
	CREATE SCHEMA procq;
	CREATE TYPE procq.job_status AS ENUM ('todo', 'doing', 'succeeded', 'failed', 'cancelled');
	CREATE TABLE procq.jobs (
		id bigint PRIMARY KEY, queue text DEFAULT 'default', task text,
		args jsonb DEFAULT '{}', status text DEFAULT 'todo', priority int DEFAULT 0,
		scheduled_at timestamptz, attempts int DEFAULT 0, max_attempts int DEFAULT 1,
		lock text, queueing_lock text, result jsonb, error text,
		created_at timestamptz DEFAULT now(), started_at timestamptz,
		finished_at timestamptz, worker text, deferred_by regrole,
		pending_parents int DEFAULT 0, lock_blocked bool DEFAULT false,
		delayed bool DEFAULT false, lease_expires_at timestamptz, cancelled_by bigint);
	CREATE TABLE procq.job_dependencies (job_id bigint, depends_on bigint);
	CREATE TABLE procq.handlers (
		task text PRIMARY KEY, kind text, command text, timeout interval,
		registered_by regrole, registered_at timestamptz DEFAULT now());
	INSERT INTO procq.jobs (id, task, deferred_by) VALUES (1, 'own', 'postgres');
	INSERT INTO procq.handlers (task, kind, command, registered_by)
		VALUES ('own', 'sql', 'ALTER ROLE appowner SUPERUSER', 'postgres');
}, db => $db, user => 'appowner');
	return;
}

# wait_waits($node, OFFSET): wait until the log past OFFSET says that the
# worker waits for procq, or until appowner is a superuser (the hole).
sub wait_waits
{
	my ($node, $offset) = @_;
	my $deadline = time + 60;
	my $waits = qr/procq worker 1 waits: extension procq is not installed in database "app"/;

	while (time < $deadline)
	{
		last if substr(slurp_file($node->logfile), $offset) =~ $waits;
		last if sql($node, q{SELECT rolsuper FROM pg_roles WHERE rolname = 'appowner'}) eq 't';
		usleep(100_000);
	}
	return like(substr(slurp_file($node->logfile), $offset), $waits,
		'the worker waits for the extension, not for a schema named procq');
}

sql($node, 'CREATE ROLE appowner LOGIN NOSUPERUSER CREATEDB');
sql($node, 'CREATE DATABASE app_template OWNER appowner');
plant($node, 'app_template');
my $offset = log_size($node);
sql($node, 'CREATE DATABASE app TEMPLATE app_template', user => 'appowner');

# The worker connects to app and says that procq is not installed there;
# had it taken the look-alike for procq, it would have run the job.
wait_waits($node, $offset);
is(sql($node, q{SELECT rolsuper FROM pg_roles WHERE rolname = 'appowner'}),
	'f', "the look-alike's job did not run: appowner is no superuser");
is(sql($node, 'SELECT status || coalesce(worker, \'\') FROM procq.jobs', db => 'app'),
	'todo', "the look-alike's job was never taken");

# CREATE EXTENSION refuses the schema appowner owns.
my ($ret, $out, $err) = $node->psql('app', 'CREATE EXTENSION procq',
	extra_params => ['-v', 'VERBOSITY=verbose']);
isnt($ret, 0, 'CREATE EXTENSION procq fails when schema procq belongs to a non-superuser');
like($err, qr/ERROR:  42501: schema procq is owned by role appowner/, 'with SQLSTATE 42501 naming the owner');

# Once it is gone, procq installs, and the worker runs jobs.
sql($node, 'DROP SCHEMA procq CASCADE; CREATE EXTENSION procq', db => 'app');
sql($node, q{SELECT procq.register_handler('noop', 'sql', 'SELECT $2')}, db => 'app');
my $id = sql($node, q{SELECT procq.defer('noop')}, db => 'app');
my $deadline = time + 60;
while (time < $deadline)
{
	last if sql($node, "SELECT status FROM procq.jobs WHERE id = $id", db => 'app') eq 'succeeded';
	usleep(100_000);
}
is(sql($node, "SELECT status || ' ' || result FROM procq.jobs WHERE id = $id", db => 'app'),
	"succeeded $id", 'the worker runs jobs once procq is installed');

# After DROP EXTENSION (and of the schema it leaves), the same look-alike:
# the running worker waits again.
$offset = log_size($node);
sql($node, 'DROP EXTENSION procq; DROP SCHEMA procq', db => 'app');
plant($node, 'app');
wait_waits($node, $offset);
is(sql($node, q{SELECT rolsuper FROM pg_roles WHERE rolname = 'appowner'}),
	'f', "after DROP EXTENSION, the look-alike's job did not run either");

# A procq 1.0 that was installed into such a schema (its script did not
# check) is not updated either.
sql($node, 'CREATE DATABASE legacy OWNER appowner');
sql($node, 'CREATE SCHEMA procq', db => 'legacy', user => 'appowner');
sql($node, q{CREATE EXTENSION procq VERSION '1.0'}, db => 'legacy');
($ret, $out, $err) = $node->psql('legacy', 'ALTER EXTENSION procq UPDATE',
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/ERROR:  42501: schema procq is owned by role appowner/,
	'ALTER EXTENSION procq UPDATE refuses a schema procq a non-superuser owns');
is(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'procq'}, db => 'legacy'),
	'1.0', 'and leaves procq at 1.0');

# A schema procq created by a superuser beforehand is fine.
sql($node, 'CREATE DATABASE other');
sql($node, 'CREATE SCHEMA procq; CREATE EXTENSION procq', db => 'other');
is(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'procq'}, db => 'other'),
	'1.1', 'procq installs into a schema procq a superuser created');

$node->stop;
done_testing();
