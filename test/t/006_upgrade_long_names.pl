# procq 1.1 limits task, queue, lock and queueing_lock (and a handler's task)
# to 255 characters; procq 1.0 accepted longer ones.  ALTER EXTENSION procq
# UPDATE of a 1.0 database that has such a job or handler stops with a
# clear error (22001, how many jobs, one of them, what to do) and leaves
# everything as it was, still 1.0; once the DBA has renamed or deleted them,
# the update goes through and the limits hold.
use strict;
use warnings FATAL => 'all';
use ProcqTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = procq_node('upgrade_long', preload => 0, no_extension => 1);

sql($node, q{CREATE EXTENSION procq VERSION '1.0'});
# (inserted directly: this library's defer already refuses them, also
# through the 1.0 declarations)
sql($node, q{
INSERT INTO procq.jobs (task) VALUES ('short');
INSERT INTO procq.jobs (task) VALUES (repeat('t', 300));
INSERT INTO procq.jobs (task, queue) VALUES ('t', repeat('q', 256));
INSERT INTO procq.jobs (task, queueing_lock) VALUES ('t', repeat('k', 1000));
});
my $jobs = q{SELECT string_agg(id || ':' || length(task) || ':' || length(queue) || ':'
    || coalesce(length(queueing_lock), 0), ' ' ORDER BY id) FROM procq.jobs};
my $before = sql($node, $jobs);

my ($ret, $out, $err) = $node->psql('postgres', 'ALTER EXTENSION procq UPDATE',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'the update refuses a 1.0 database with over-long names');
like($err, qr/ERROR:  22001: procq 1.1 allows at most 255 characters in task, queue, lock and queueing_lock, and 3 jobs have more/,
	'... with SQLSTATE 22001 and how many jobs');
like($err, qr/DETAIL:  Job 2 is one of them\./, '... naming one of them');
like($err, qr/HINT:  Delete those jobs, or give them shorter names/, '... and what to do');
is(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'procq'}),
	'1.0', 'procq is still 1.0');
is(sql($node, $jobs), $before, 'the jobs are as they were');

# A handler with a long task name is refused too.
sql($node, q{DELETE FROM procq.jobs WHERE id > 1});
sql($node, q{INSERT INTO procq.handlers (task, kind, command, registered_by)
    VALUES (repeat('h', 400), 'sql', 'SELECT 1', 'postgres')});
($ret, $out, $err) = $node->psql('postgres', 'ALTER EXTENSION procq UPDATE',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  22001: procq 1.1 allows at most 255 characters in a handler's task, and 1 handlers have more/,
	'a handler with a long task name stops the update too');
is(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'procq'}),
	'1.0', 'procq is still 1.0');

# Once they are gone, the update goes through, and the limits hold.
sql($node, q{DELETE FROM procq.handlers});
sql($node, 'ALTER EXTENSION procq UPDATE');
isnt(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'procq'}),
	'1.0', 'the update goes through once the long names are gone');
expect_sqlstate($node, '22001', 'defer refuses a long task after the update',
	q{SELECT procq.defer(repeat('t', 256))});
expect_sqlstate($node, '23514', 'the table refuses a long queue after the update',
	q{INSERT INTO procq.jobs (task, queue) VALUES ('t', repeat('q', 256))});
expect_sqlstate($node, '23514', 'the handlers table refuses a long task after the update',
	q{INSERT INTO procq.handlers (task, kind, command, registered_by)
      VALUES (repeat('h', 256), 'sql', 'SELECT 1', 'postgres')});
is(sql($node, q{SELECT count(*) FROM procq.jobs WHERE task = 'short'}), 1,
	'the short job survived');

$node->stop;
done_testing();
