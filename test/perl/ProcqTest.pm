# test/perl/ProcqTest.pm: helpers for procq's TAP tests (test/t/*.pl).
#
# Each test starts its own throwaway cluster with PostgreSQL::Test::Cluster
# (procq preloaded or not), so tests never share a server.  The runner
# (scripts/run-tests.sh) runs prove as the OS user postgres, with PATH
# starting at the PostgreSQL 15 bin directory and this directory and
# PostgreSQL's own test modules on @INC.
#
#   procq_node(NAME, %opts)       a started cluster with procq installed in
#                                 database postgres; opts: preload => 0|1
#                                 (default 1), conf => [lines], workers =>
#                                 N (wait until N workers are idle)
#   sql($node, SQL, %opts)        safe_psql in database postgres (opts:
#                                 user => ROLE, db => DATABASE)
#   wait_for($node, COND, MSG, [SECS], [DIAG])
#                                 poll the SQL boolean COND every 0.1 s
#                                 (errors count as false) until true, else
#                                 fail MSG with DIAG's rows; returns 1/0
#   wait_final($node, MSG, IDS_SQL, [SECS])
#                                 wait until every job IDS_SQL returns is
#                                 succeeded, failed or cancelled
#   check_job($node, ID, DESC, COND)
#                                 ok() if COND (SQL over procq.jobs) holds
#                                 for job ID, else a failure describing it
#   expect_sqlstate($node, CODE, DESC, SQL, %opts)
#                                 ok() if SQL fails with SQLSTATE CODE
#   register($node, TASK, KIND, COMMAND, [TIMEOUT])
#   defer($node, TASK, [ARGS_JSON], [MAX_ATTEMPTS])  returns the job id
#   register_slow($node, SECONDS) a shell handler 'slow' sleeping SECONDS
#                                 (as "sleep SECONDS.NONCE") at its first
#                                 run for a job, printing "second run" at
#                                 once after; returns the nonce
#   nonce()                       digits no other command line has
#   quote_literal(STR)            STR as a SQL string literal
#   wait_gone(MARKER, SECS)       wait until no process has MARKER in its
#                                 command line; returns 1/0
#   log_size($node)               the server log's size, for wait_crash
#   wait_crash($node, PID, OFFSET)
#                                 wait until the log past OFFSET shows
#                                 worker PID died of SIGKILL and the
#                                 server reinitialized, then until it
#                                 accepts queries again
package ProcqTest;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(procq_node sql wait_for wait_final check_job
  expect_sqlstate register defer register_slow nonce quote_literal
  wait_gone log_size wait_crash);

sub quote_literal
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

sub procq_node
{
	my ($name, %opts) = @_;
	my $preload = $opts{preload} // 1;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	# Cluster.pm turns these off; the crash tests need the crash restart,
	# and log_statement = all would bury the workers' own messages.
	$node->append_conf('postgresql.conf',
		"restart_after_crash = on\nlog_statement = none\n");
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'procq'\n"
		  . "procq.poll_interval = 200ms\n"
		  . "procq.retry_delay = 0\n")
	  if $preload;
	$node->append_conf('postgresql.conf', join('', map { "$_\n" } @{ $opts{conf} // [] }));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION procq')
	  unless $opts{no_extension};
	if (defined $opts{workers})
	{
		wait_for($node,
			"(SELECT count(*) FILTER (WHERE state = 'idle') FROM procq.worker_status) = $opts{workers}",
			"$opts{workers} procq workers did not become idle",
			60, 'SELECT * FROM procq.worker_status')
		  or BAIL_OUT("procq workers did not start");
	}
	return $node;
}

sub sql
{
	my ($node, $sql, %opts) = @_;
	my @extra = defined $opts{user} ? ('-U', $opts{user}) : ();

	return $node->safe_psql($opts{db} // 'postgres', $sql, extra_params => \@extra);
}

# try_sql: like sql, but returns undef instead of dying on an error (the
# server may be restarting).
sub try_sql
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, on_error_stop => 1);

	return $ret == 0 ? $out : undef;
}

sub wait_for
{
	my ($node, $cond, $msg, $secs, $diag) = @_;
	my $deadline = time + ($secs // 60);

	while (1)
	{
		my $v = try_sql($node, "SELECT ($cond)::boolean");
		return 1 if defined $v && $v eq 't';
		last if time >= $deadline;
		usleep(100_000);
	}
	my $rows = $diag ? (try_sql($node, $diag) // '(diagnostic query failed)') : '';
	fail("$msg (waited " . ($secs // 60) . " s)");
	diag($rows) if $rows ne '';
	return 0;
}

sub wait_final
{
	my ($node, $msg, $ids, $secs) = @_;
	return wait_for($node,
		"SELECT bool_and(status IN ('succeeded', 'failed', 'cancelled')) FROM procq.jobs WHERE id IN ($ids)",
		"timed out waiting for $msg", $secs);
}

sub check_job
{
	my ($node, $id, $desc, $cond) = @_;
	my $v = sql($node, "SELECT ($cond)::boolean FROM procq.jobs WHERE id = $id");

	return ok(1, $desc) if $v eq 't';
	fail($desc);
	diag("job $id is "
		  . sql($node,
			"SELECT format('%s, attempts %s, result %s, error %L', status, attempts, left(result::text, 200), left(error, 300)) FROM procq.jobs WHERE id = $id"
		  ));
	return 0;
}

sub expect_sqlstate
{
	my ($node, $code, $desc, $sql, %opts) = @_;
	my @extra = ('-v', 'VERBOSITY=verbose');
	push @extra, ('-U', $opts{user}) if defined $opts{user};
	my ($ret, $out, $err) = $node->psql($opts{db} // 'postgres', $sql,
		on_error_stop => 1, extra_params => \@extra);

	if ($ret == 0)
	{
		fail("$desc: succeeded, expected SQLSTATE $code");
		return 0;
	}
	return ok(1, $desc) if $err =~ /ERROR:  \Q$code\E:/;
	fail("$desc: expected SQLSTATE $code");
	diag("got: $err");
	return 0;
}

sub register
{
	my ($node, $task, $kind, $cmd, $timeout) = @_;
	my $t = defined $timeout && $timeout ne '' ? quote_literal($timeout) . '::interval' : 'NULL';

	sql($node,
		sprintf('SELECT procq.register_handler(%s, %s, %s, %s)',
			quote_literal($task), quote_literal($kind), quote_literal($cmd), $t));
	return;
}

sub defer
{
	my ($node, $task, $args, $max_attempts) = @_;
	$args = '{}' if !defined $args || $args eq '';

	return sql($node,
		sprintf('SELECT procq.defer(%s, %s::jsonb, max_attempts => %d)',
			quote_literal($task), quote_literal($args), $max_attempts // 1));
}

sub nonce
{
	return sprintf('%d%d%d', time, $$, int(rand(100000)));
}

sub register_slow
{
	my ($node, $seconds) = @_;
	my $n = nonce();
	my $script = $node->basedir . '/slow.sh';

	open my $fh, '>', $script or die "could not write $script: $!";
	print $fh <<'EOS';
if [ -e "$0.ran.$PROCQ_JOB_ID" ]; then echo "second run"; exit 0; fi
: >"$0.ran.$PROCQ_JOB_ID"
exec sleep "$1"
EOS
	close $fh;
	chmod 0755, $script;
	register($node, 'slow', 'shell', "/bin/sh $script $seconds.$n");
	return $n;
}

# pgrep_count(MARKER): how many processes have MARKER (a regex) in their
# command line.
sub pgrep_count
{
	my ($marker) = @_;
	my $out = `pgrep -fc -- '$marker'`;
	chomp $out;
	return $out eq '' ? 0 : $out + 0;
}

sub wait_gone
{
	my ($marker, $secs) = @_;
	my $deadline = time + $secs;

	while (pgrep_count($marker) > 0)
	{
		return 0 if time >= $deadline;
		usleep(100_000);
	}
	return 1;
}

sub log_size
{
	my ($node) = @_;
	return -s $node->logfile;
}

sub wait_crash
{
	my ($node, $pid, $offset) = @_;
	my $deadline = time + 60;

	while (1)
	{
		my $new = substr(slurp_file($node->logfile), $offset);
		last
		  if $new =~ /\(PID \Q$pid\E\) was terminated by signal 9/
		  && $new =~ /all server processes terminated; reinitializing/;
		if (time >= $deadline)
		{
			fail("the postmaster did not crash-restart after worker $pid was killed");
			return 0;
		}
		usleep(100_000);
	}
	return wait_for($node, 'true', "the server did not come back after worker $pid was killed");
}

push @EXPORT, qw(try_sql pgrep_count);

1;
