# procq 1.1 replaces 1.0's fetch_job(queues, worker) by fetch_job(queues,
# worker, tasks) (keeping both would make fetch_job() ambiguous).  An
# application role that was granted EXECUTE on the 1.0 function must still
# fetch after ALTER EXTENSION procq UPDATE, with every form of call it used
# (no arguments, by position, by name) and with the new tasks argument; a
# role that had no grant still has none.
use strict;
use warnings FATAL => 'all';
use ProcqTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = procq_node('upgrade_grants', preload => 0, no_extension => 1);

sql($node, q{CREATE EXTENSION procq VERSION '1.0'});
sql($node, q{
CREATE ROLE app LOGIN;
CREATE ROLE outsider LOGIN;
GRANT USAGE ON SCHEMA procq TO app, outsider;
GRANT EXECUTE ON FUNCTION procq.fetch_job(text[], text),
    procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text) TO app;
});
# app's own jobs: a role fetches only the jobs of roles whose privileges it
# has (procq 1.1), and these are the grants under test
sql($node, q{SELECT procq.defer('t', queue => 'q') FROM generate_series(1, 4)}, user => 'app');
is(sql($node, q{SELECT count(*) FROM procq.fetch_job(ARRAY['q'], 'w')}, user => 'app'),
	1, 'app fetches with procq 1.0');

sql($node, 'ALTER EXTENSION procq UPDATE');

is(sql($node, q{SELECT count(*) FROM procq.fetch_job()}, user => 'app'),
	1, 'after the update, app still fetches: fetch_job()');
is(sql($node, q{SELECT count(*) FROM procq.fetch_job(ARRAY['q'], 'w')}, user => 'app'),
	1, '... fetch_job(queues, worker) by position');
is(sql($node, q{SELECT count(*) FROM procq.fetch_job(worker => 'w', tasks => ARRAY['t'])}, user => 'app'),
	1, '... fetch_job(worker =>, tasks =>) by name');
# issue 9: defer takes run_after and workflow_id; the grant carries over
like(sql($node, q{SELECT procq.defer('t', queue => 'q', run_after => 'completion')}, user => 'app'),
	qr/^\d+$/, 'after the update, app still defers, with the new arguments too');
is(sql($node, q{SELECT has_function_privilege('outsider',
    'procq.defer(text, jsonb, text, integer, timestamptz, bigint[], integer, text, text, text, bigint)',
    'EXECUTE')}),
	'f', 'a role without a grant on 1.0 defer has none on the new one');
is(sql($node, q{SELECT has_function_privilege('outsider',
    'procq.fetch_job(text[], text, text[])', 'EXECUTE')}),
	'f', 'a role without a grant on 1.0 fetch_job has none on the new one');
is(sql($node, q{SELECT has_function_privilege('public',
    'procq.fetch_job(text[], text, text[])', 'EXECUTE')}),
	'f', 'PUBLIC has no EXECUTE on the new fetch_job');

$node->stop;
done_testing();
