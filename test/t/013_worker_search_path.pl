# The workers' own statements run as the owner of procq's tables (a
# superuser) and must not resolve names through a schema that a less
# privileged role can create in.  The owner of procq.database (not a
# superuser; public belongs to it in PostgreSQL 15) plants
# public.make_interval(integer), a better match than pg_catalog's for the
# workers' fetch, which would make it a superuser if it were ever called
# with the workers' privileges.  After jobs have run, it is still not one.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use ProcqTest;

# Like the bash test, no procq.retry_delay here, and procq.database is app,
# which does not exist yet when the server starts.
my $node = procq_node('search_path',
	preload => 0, no_extension => 1,
	conf => [
		"shared_preload_libraries = 'procq'", "procq.database = 'app'",
		'procq.workers = 1', 'procq.poll_interval = 200ms'
	]);

# wait_until_app(DESC, SQL): poll SQL in database app (every 0.2 s, up to
# 60 s) until it returns t; else fail naming DESC.  ProcqTest's wait_for
# polls database postgres only.
sub wait_until_app
{
	my ($desc, $cond) = @_;
	my $deadline = time + 60;

	while (1)
	{
		my ($ret, $out) = $node->psql('app', $cond, on_error_stop => 1);
		return 1 if $ret == 0 && $out eq 't';
		last if time >= $deadline;
		usleep(200_000);
	}
	fail("timed out after 60 s waiting for $desc");
	return 0;
}

sql($node, 'CREATE ROLE appowner LOGIN NOSUPERUSER');
sql($node, 'CREATE DATABASE app OWNER appowner');
sql($node, 'CREATE EXTENSION procq', db => 'app');
sql($node,
	'GRANT USAGE ON SCHEMA procq TO appowner; GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO appowner;'
	  # appowner registers a handler: the administrator grants (README, Privileges)
	  . ' GRANT SELECT, INSERT, UPDATE, DELETE ON procq.handlers TO appowner',
	db => 'app');
sql($node, q{CREATE FUNCTION public.make_interval(secs integer) RETURNS interval
    LANGUAGE plpgsql AS $$
    BEGIN
        EXECUTE 'ALTER ROLE appowner SUPERUSER';
        RETURN pg_catalog.make_interval(secs => secs::float8);
    END $$}, db => 'app', user => 'appowner');
sql($node, q{SELECT procq.register_handler('noop', 'sql', 'SELECT 1')}, db => 'app', user => 'appowner');
my $id = sql($node, q{SELECT procq.defer('noop')}, db => 'app', user => 'appowner');
wait_until_app("job $id ran", "SELECT status = 'succeeded' FROM procq.jobs WHERE id = $id");
is(sql($node, q{SELECT rolsuper FROM pg_roles WHERE rolname = 'appowner'}, db => 'app'),
	'f', "the workers' statements ignore objects planted in public; appowner is still no superuser");

$node->stop;
done_testing();
