# Users run procq 1.0.  ALTER EXTENSION procq UPDATE must keep their jobs,
# dependencies, bookkeeping and handlers, must leave a queue that goes on
# working, and must reach exactly the catalog of a fresh install of the
# current version: tables, columns (in order), constraints, indexes,
# functions with their signatures, settings and attributes, triggers, views,
# types, comments, grants and the extension's membership and dump
# configuration.  Any difference is printed as a diff.
use strict;
use warnings FATAL => 'all';
use ProcqTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = procq_node('upgrade', preload => 0, no_extension => 1);

my $current = sql($node,
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'procq'});
isnt($current, '1.0', "the default version ($current) is newer than 1.0");

sql($node, 'CREATE DATABASE fresh');
sql($node, 'CREATE EXTENSION procq', db => 'fresh');

# A 1.0 install with a bit of everything: a finished parent, a waiting
# child, a lock queue, a scheduled job, a running job, a failed job with a
# cancelled descendant, and a handler.
sql($node, q{CREATE EXTENSION procq VERSION '1.0'});
is(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'procq'}),
	'1.0', 'procq 1.0 installs');
sql($node, q{
SELECT procq.defer('parent', '{"n": 1}');
SELECT procq.defer('other parent');
SELECT procq.defer('child', depends_on => ARRAY[1, 2], lock => 'L');
SELECT procq.defer('behind lock', lock => 'L');
SELECT procq.defer('later', scheduled_at => now() + interval '1 day');
SELECT procq.defer('doomed');
SELECT procq.defer('doomed child', depends_on => ARRAY[6]);
SELECT procq.defer('running', queue => 'q2', queueing_lock => 'QL');
SELECT procq.finish_job(id, 'succeeded', '{"r": 1}') FROM procq.fetch_job() WHERE id = 1;
SELECT procq.fetch_job(ARRAY['q2'], 'w1');
SELECT procq.register_handler('parent', 'sql', 'SELECT 1');
});
sql($node, q{
UPDATE procq.jobs SET status = 'doing', attempts = 1, started_at = now(),
    lease_expires_at = now() + interval '1 hour' WHERE id = 6;
SELECT procq.finish_job(6, 'failed', error => 'boom');
});

my $snapshot = q{
SELECT string_agg(format('%s:%s:%s:%s:%s:%s:%s:%s:%s:%s:%s', id, task, queue, status,
  pending_parents, lock_blocked, delayed, result, error, cancelled_by, worker), ' ' ORDER BY id)
FROM procq.jobs};
my $deps = q{SELECT string_agg(job_id || '->' || depends_on, ',' ORDER BY job_id, depends_on)
FROM procq.job_dependencies};
my $handlers = q{SELECT string_agg(task || ':' || kind || ':' || command, ',' ORDER BY task)
FROM procq.handlers};
my ($jobs_before, $deps_before, $handlers_before) =
  map { sql($node, $_) } ($snapshot, $deps, $handlers);
like($jobs_before, qr/^1:parent:default:succeeded/, 'the 1.0 queue has its jobs');

# A condition on parents cannot be kept on 1.0's table: a workflow step that
# asks for one is refused, not run as a 'success' job.
my ($rc, $out, $err) = $node->psql('postgres', q{SELECT * FROM procq.defer_workflow(
    '[{"key": "x", "task": "x"}, {"key": "y", "task": "y", "depends_on": ["x"], "run_after": "failure"}]')});
like($err, qr/run_after needs version 1\.1 of extension procq/,
	'on 1.0, defer_workflow refuses a step with run_after other than success');
is(sql($node, $snapshot), $jobs_before, '... and inserts nothing');

sql($node, 'ALTER EXTENSION procq UPDATE');
is(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'procq'}),
	$current, "ALTER EXTENSION procq UPDATE reaches $current");

is(sql($node, $snapshot), $jobs_before, 'jobs and their bookkeeping survive the update');
is(sql($node, $deps), $deps_before, 'dependencies survive the update');
is(sql($node, $handlers), $handlers_before, 'handlers survive the update');

# issue 9: the jobs of 1.0 get the workflows defer would give them, in id
# order: 3's parents (1, 2) are in two workflows, so it starts its own; 7
# joins its only parent's (6).  Setting workflow_id = id for all would
# leave 7 in a workflow of its own.
is(sql($node, q{SELECT string_agg(id || ':' || workflow_id, ' ' ORDER BY id) FROM procq.jobs}),
	'1:1 2:2 3:3 4:4 5:5 6:6 7:6 8:8', 'the jobs of 1.0 get workflow ids by the defer rule');

# The updated queue goes on working: the waiting child is released by its
# second parent, the next id follows, the failed parent can be retried.
sql($node, q{SELECT procq.finish_job(id, 'succeeded') FROM procq.fetch_job() WHERE id = 2});
is(sql($node, 'SELECT pending_parents FROM procq.jobs WHERE id = 3'),
	0, 'a parent finished after the update releases its child');
is(sql($node, q{SELECT procq.defer('new')}), 9, 'the next id follows the existing ones');
is(sql($node, q{SELECT string_agg(id || ':' || failed_parents, ',' ORDER BY id) FROM procq.jobs
    WHERE failed_parents > 0}),
	'7:1', 'the update counts the failed parents of 1.0 jobs (the child of failed job 6)');
sql($node, 'SELECT procq.retry_job(6)');
is(sql($node, 'SELECT failed_parents FROM procq.jobs WHERE id = 7'),
	0, '... and retrying the parent counts it down');
is(sql($node, q{SELECT string_agg(status::text, ',' ORDER BY id) FROM procq.jobs WHERE id IN (6, 7)}),
	'todo,todo', 'a failed 1.0 job and its cancelled child can be retried');
my $late = sql($node, q{SELECT procq.defer('late child', depends_on => ARRAY[7])});
is(sql($node, "SELECT workflow_id FROM procq.jobs WHERE id = $late"),
	6, 'a job deferred after the update with a 1.0 parent joins its workflow');

# The catalog, as text without OIDs, one line per fact, sorted.
my $catalog = q{
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'procq'),
members AS (
    SELECT classid, objid FROM pg_depend, ext
    WHERE refclassid = 'pg_extension'::regclass AND refobjid = ext.oid AND deptype = 'e'),
rels AS (SELECT c.* FROM pg_class c WHERE c.relnamespace = 'procq'::regnamespace),
facts(line) AS (
    SELECT 'member ' || pg_describe_object(classid, objid, 0) FROM members
  UNION ALL
    SELECT format('relation %s kind=%s options=%s acl=%s persistence=%s comment=%s',
                  oid::regclass, relkind, reloptions, relacl, relpersistence,
                  obj_description(oid, 'pg_class'))
    FROM rels
  UNION ALL
    SELECT format('column %s.%s #%s %s notnull=%s default=%s identity=%s generated=%s comment=%s acl=%s',
                  a.attrelid::regclass, a.attname,
                  row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                  col_description(a.attrelid, a.attnum), a.attacl)
    FROM pg_attribute a JOIN rels r ON r.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT format('constraint %s %s %s deferrable=%s', conrelid::regclass, conname,
                  pg_get_constraintdef(oid), condeferrable)
    FROM pg_constraint WHERE connamespace = 'procq'::regnamespace
  UNION ALL
    SELECT 'index ' || pg_get_indexdef(indexrelid) || ' options=' || coalesce(c.reloptions::text, '')
    FROM pg_index i JOIN rels c ON c.oid = i.indexrelid
  UNION ALL
    SELECT format('function %s returns %s args=(%s) lang=%s volatile=%s strict=%s secdef=%s parallel=%s '
                  'leakproof=%s cost=%s rows=%s config=%s src=%s bin=%s acl=%s comment=%s',
                  p.oid::regprocedure, pg_get_function_result(p.oid),
                  pg_get_function_arguments(p.oid), l.lanname, p.provolatile, p.proisstrict,
                  p.prosecdef, p.proparallel, p.proleakproof, p.procost, p.prorows,
                  p.proconfig, p.prosrc, p.probin, p.proacl, obj_description(p.oid, 'pg_proc'))
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
    WHERE p.pronamespace = 'procq'::regnamespace
  UNION ALL
    SELECT format('trigger %s %s enabled=%s', tgrelid::regclass, pg_get_triggerdef(oid), tgenabled)
    FROM pg_trigger WHERE tgrelid IN (SELECT oid FROM rels) AND NOT tgisinternal
  UNION ALL
    SELECT format('view %s %s', oid::regclass, pg_get_viewdef(oid)) FROM rels WHERE relkind IN ('v', 'm')
  UNION ALL
    SELECT format('type %s type=%s comment=%s acl=%s', t.oid::regtype, t.typtype,
                  obj_description(t.oid, 'pg_type'), t.typacl)
    FROM pg_type t WHERE t.typnamespace = 'procq'::regnamespace
  UNION ALL
    SELECT format('enum %s %s #%s', enumtypid::regtype, enumlabel,
                  row_number() OVER (PARTITION BY enumtypid ORDER BY enumsortorder))
    FROM pg_enum WHERE enumtypid IN (SELECT oid FROM pg_type WHERE typnamespace = 'procq'::regnamespace)
  UNION ALL
    SELECT format('policy %s %s', polrelid::regclass, polname) FROM pg_policy
    WHERE polrelid IN (SELECT oid FROM rels)
  UNION ALL
    SELECT format('schema procq acl=%s comment=%s', nspacl, obj_description(oid, 'pg_namespace'))
    FROM pg_namespace WHERE nspname = 'procq'
  UNION ALL
    SELECT format('extension config=%s condition=%s relocatable=%s',
                  (SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM unnest(extconfig) c),
                  extcondition, extrelocatable)
    FROM pg_extension WHERE extname = 'procq'
)
SELECT string_agg(line, E'\n' ORDER BY line) FROM facts};

my $updated = sql($node, $catalog);
my $fresh = sql($node, $catalog, db => 'fresh');
cmp_ok(length($fresh), '>', 1000, 'the catalog listing has content');
if ($updated eq $fresh)
{
	pass('the updated catalog equals a fresh install');
}
else
{
	my %u = map { $_ => 1 } split /\n/, $updated;
	my %f = map { $_ => 1 } split /\n/, $fresh;
	diag("only after UPDATE: $_") for grep { !$f{$_} } sort keys %u;
	diag("only in fresh install: $_") for grep { !$u{$_} } sort keys %f;
	fail('the updated catalog equals a fresh install');
}

$node->stop;
done_testing();
