# A transaction that makes a job ready (a defer, the finish of its last
# parent, a retry) can be prepared with PREPARE TRANSACTION.  procq's
# NOTIFY procq is sent when such a transaction commits, and PostgreSQL
# refuses to prepare a transaction that has sent a NOTIFY; so procq queues
# its notification at the transaction's pre-commit, and a transaction that
# is prepared instead sends none.  Its jobs become ready at COMMIT
# PREPARED, and LISTENers and the background workers find them at their
# next poll.  A plain COMMIT still notifies, once per queue, and a
# subtransaction rolled back takes its notification with it.
#
# Before, PREPARE TRANSACTION failed after procq.defer of a ready job:
# "cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or
# NOTIFY" (0A000).
use strict;
use warnings FATAL => 'all';
use ProcqTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = procq_node('prepare', workers => 1,
	conf => [ 'max_prepared_transactions = 5', 'procq.workers = 1' ]);

# What a session that LISTENs receives: its own notifications too.
sub notifications
{
	my ($out) = @_;
	return join(',', $out =~ /Asynchronous notification "procq" with payload "([^"]*)"/g);
}

# A defer of a ready job, prepared, then committed: no error, no
# notification, and the job is there once committed.
my ($ret, $out, $err) = $node->psql('postgres', q{
LISTEN procq;
BEGIN;
SELECT procq.defer('t', queue => 'prepared');
PREPARE TRANSACTION 'defer';
COMMIT PREPARED 'defer';
SELECT 'after commit prepared';
}, on_error_stop => 1);
is($ret, 0, 'a transaction that defers a ready job can be prepared')
  or diag($err);
is(notifications($out), '', '... and sends no notification');
is(sql($node, q{SELECT count(*) FROM procq.jobs WHERE queue = 'prepared'}), 1,
	'... and its job exists after COMMIT PREPARED');

# A plain commit notifies, once per queue; a rolled-back subtransaction
# does not.
($ret, $out, $err) = $node->psql('postgres', q{
LISTEN procq;
BEGIN;
SELECT procq.defer('t', queue => 'plain');
SELECT procq.defer('t', queue => 'plain');
SAVEPOINT s;
SELECT procq.defer('t', queue => 'rolled back');
ROLLBACK TO SAVEPOINT s;
SAVEPOINT s2;
SELECT procq.defer('t', queue => 'released');
RELEASE SAVEPOINT s2;
COMMIT;
SELECT 'after commit';
}, on_error_stop => 1);
is($ret, 0, 'a plain transaction commits') or diag($err);
is(notifications($out), 'plain,released',
	'it notifies once per queue, not for a rolled-back subtransaction');

# Many queues (past the point where procq indexes them by name), some
# named again, some in a rolled-back subtransaction: each notified once, in
# the order first named.
my $many = join("\n", map { "SELECT procq.defer('t', queue => 'm$_');" } 1 .. 20);
my $sub = join("\n", map { "SELECT procq.defer('t', queue => 'm$_');" } 5, 21 .. 40);
($ret, $out, $err) = $node->psql('postgres', qq{
LISTEN procq;
BEGIN;
$many
SAVEPOINT s;
$sub
ROLLBACK TO SAVEPOINT s;
SELECT procq.defer('t', queue => 'm41');
SELECT procq.defer('t', queue => 'm3');
COMMIT;
SELECT 'after commit';
}, on_error_stop => 1);
is($ret, 0, 'a transaction with many queues commits') or diag($err);
is(notifications($out), join(',', map { "m$_" } 1 .. 20, 41),
	'each queue is notified once, in order, none of the rolled-back subtransaction');

# The finish of a parent and a retry, prepared: the children become ready
# at COMMIT PREPARED.
sql($node, q{
SELECT procq.defer('parent', queue => 'p');
SELECT procq.defer('child', queue => 'c', depends_on => ARRAY[(SELECT id FROM procq.jobs WHERE task = 'parent')]);
SELECT procq.defer('broken', queue => 'p');
});
my $parent = sql($node, q{SELECT id FROM procq.jobs WHERE task = 'parent'});
my $broken = sql($node, q{SELECT id FROM procq.jobs WHERE task = 'broken'});
sql($node, q{SELECT id FROM procq.fetch_jobs(2, ARRAY['p'])});
($ret, $out, $err) = $node->psql('postgres', qq{
BEGIN;
SELECT procq.finish_job($parent, 'succeeded');
SELECT procq.finish_job($broken, 'failed');
PREPARE TRANSACTION 'finish';
COMMIT PREPARED 'finish';
BEGIN;
SELECT procq.retry_job($broken);
PREPARE TRANSACTION 'retry';
COMMIT PREPARED 'retry';
}, on_error_stop => 1);
is($ret, 0, 'a finish that releases a child and a retry can be prepared') or diag($err);
is(sql($node, q{SELECT string_agg(task || ':' || status, ',' ORDER BY id)
    FROM procq.fetch_jobs(10, ARRAY['p', 'c'])}),
	'child:doing,broken:doing', 'the child and the retried job are ready after COMMIT PREPARED');

# The background workers find a job of a prepared transaction by polling.
register($node, 'bg', 'sql', 'SELECT 42');
($ret, $out, $err) = $node->psql('postgres', q{
BEGIN;
SELECT procq.defer('bg', queue => 'workers');
PREPARE TRANSACTION 'bg';
COMMIT PREPARED 'bg';
}, on_error_stop => 1);
is($ret, 0, 'a prepared defer for the background workers commits') or diag($err);
wait_final($node, 'the background workers run the job of a prepared transaction',
	q{SELECT id FROM procq.jobs WHERE task = 'bg'});
is(sql($node, q{SELECT status || ':' || result FROM procq.jobs WHERE task = 'bg'}),
	'succeeded:42', '... and it succeeded');

# A transaction that NOTIFYs by itself still cannot be prepared
# (PostgreSQL's rule), with PostgreSQL's clear error.
($ret, $out, $err) = $node->psql('postgres', q{
BEGIN;
NOTIFY mine;
PREPARE TRANSACTION 'own';
}, on_error_stop => 1);
like($err, qr/cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY/,
	"a transaction's own NOTIFY still cannot be prepared");
is(sql($node, q{SELECT count(*) FROM pg_prepared_xacts}), 0, 'no prepared transaction is left');

$node->stop;
done_testing();
