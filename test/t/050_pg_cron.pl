# Periodic workflows with pg_cron (docs/periodic.md): on a cluster with
# pg_cron and procq preloaded (pg_cron's commands run in background
# workers, procq's workers run the jobs), a schedule that fires every
# minute runs procq.defer_workflow_once for a tick that is a day.  Each
# tick defers its workflow at most once: the first run defers it (and the
# workers run it), the later runs of the same day defer nothing, nor does
# the command run again by hand after the workflow has finished, nor a
# changed schedule, nor a run after a server restart.
#
# The page's sql blocks are the test: they run here, in page order, each
# with psql -X -q -v ON_ERROR_STOP=1 in database postgres, and a block
# followed by an output block must print exactly that (trailing blanks
# aside).  The page's comments "<!-- 050_pg_cron: ... -->" mark where this
# test waits for pg_cron (and restarts the server).
use strict;
use warnings FATAL => 'all';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $page = 'docs/periodic.md';
my $tick_wait = 150;    # seconds: a tick comes once a minute

# The page's tick is the UTC day: a test that crossed midnight would see
# two ticks.  Near midnight, wait for the new day first (at most 4 min).
my @now = gmtime(time);
my $to_midnight = 86400 - ($now[2] * 3600 + $now[1] * 60 + $now[0]);
if ($to_midnight < 240)
{
	note("waiting $to_midnight s for the UTC day to change (the page's tick is a day)");
	sleep($to_midnight + 2);
}

my $node = procq_node('pg_cron', preload => 0, workers => 1,
	conf => [
		"shared_preload_libraries = 'pg_cron,procq'",
		"cron.database_name = 'postgres'",
		"cron.use_background_workers = on",
		"max_worker_processes = 20",
		"procq.database = 'postgres'",
		"procq.workers = 1",
		"procq.poll_interval = 200ms",
	]);

# The page: its sql blocks (with the output block that follows each, if
# any) and its wait markers, in order.
open(my $fh, '<', $page) or die "cannot read $page: $!";
my @lines = <$fh>;
close($fh);
like($lines[0], qr/^<!-- docs-test: skip, run by test\/t\/050_pg_cron\.pl -->$/,
	"$page is marked as run by this test, not by docs.sh");
# An output block belongs to the sql block it follows (blank lines
# between allowed); a block of another kind is not run.
my (@items, $info, $text, $last);
for my $line (@lines)
{
	if (defined $info)
	{
		if ($line =~ /^```\s*$/)
		{
			if ($info eq 'sql') { push @items, { sql => $text }; $last = $items[-1]; }
			elsif ($info eq 'output')
			{
				die "$page: an output block that follows no sql block" unless $last;
				$last->{output} = $text;
				undef $last;
			}
			elsif ($info =~ /^sql/) { die "$page: a block \"$info\" this test does not run"; }
			else { undef $last; }
			undef $info;
			next;
		}
		$text .= $line;
		next;
	}
	if ($line =~ /^```(.*?)\s*$/)
	{
		$info = $1;
		$text = '';
		undef $last unless $info eq 'output';
		next;
	}
	if ($line =~ /^<!-- 050_pg_cron: (.*) -->$/) { push @items, { hook => $1 }; undef $last; next; }
	undef $last if $line !~ /^\s*$/;
}
die "$page: unterminated block" if defined $info;
my @blocks = grep { exists $_->{sql} } @items;
my @hooks = grep { exists $_->{hook} } @items;
ok(@blocks >= 8 && @hooks == 2, scalar(@blocks) . " sql blocks and " . scalar(@hooks) . " wait markers on the page");

# Runs one block as psql would from the page; returns (ok, stdout, stderr).
sub run_block
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-f', '-' ],
		'<', \$sql, '>', \$out, '2>', \$err);
	return ($ok, $out, $err);
}

sub trimmed
{
	my ($s) = @_;
	$s =~ s/[ \t]+$//mg;
	$s =~ s/\n+\z//;
	return $s;
}

# The cron job runs the command of the page for today's tick; the tests'
# own checks beside the page's.
my $workflows_and_ticks = q{
	SELECT (SELECT count(*) FROM procq.workflows WHERE task = 'report_extract') || ' '
	    || (SELECT count(*) FROM procq.workflow_ticks WHERE workflow_id IS NOT NULL)};
my $restarted_at;

my $n = 0;
for my $item (@items)
{
	if (exists $item->{hook})
	{
		my $hook = $item->{hook};
		if ($hook =~ /^wait until a tick has deferred the workflow/)
		{
			wait_for($node,
				q{EXISTS (SELECT 1 FROM procq.workflow_ticks t JOIN procq.workflows w USING (workflow_id)
				          WHERE w.state = 'succeeded')},
				'a tick of the schedule deferred the workflow and the workers ran it',
				$tick_wait,
				q{SELECT jobid, status, return_message, start_time FROM cron.job_run_details ORDER BY start_time})
			  or BAIL_OUT('pg_cron did not defer the workflow; see the diagnostics');
			is(sql($node, $workflows_and_ticks), '1 1', 'the first tick deferred one workflow, and has its row');
		}
		elsif ($hook =~ /^restart the server, wait until a tick has run after the restart/)
		{
			# the schedule fired again for the same tick (it fires every minute)
			wait_for($node,
				q{(SELECT count(*) FROM cron.job_run_details WHERE jobid = 1 AND status = 'succeeded') >= 2},
				'pg_cron ran the command a second time for the same day', $tick_wait,
				q{SELECT jobid, status, return_message, start_time FROM cron.job_run_details ORDER BY start_time});
			is(sql($node, $workflows_and_ticks), '1 1', 'the second run of the same tick deferred nothing');
			$restarted_at = sql($node, 'SELECT now()');
			$node->restart;
			wait_for($node,
				"EXISTS (SELECT 1 FROM cron.job_run_details WHERE jobid = 1 AND status = 'succeeded'"
				  . " AND start_time > '$restarted_at')",
				'pg_cron ran the changed schedule after the restart', $tick_wait,
				q{SELECT jobid, status, return_message, start_time FROM cron.job_run_details ORDER BY start_time})
			  or BAIL_OUT('pg_cron did not run after the restart');
			is(sql($node, $workflows_and_ticks), '1 1',
				'after the schedule changed and the server restarted, the tick is still deferred once');
		}
		else { die "$page: unknown marker \"$hook\""; }
		next;
	}
	next unless exists $item->{sql};
	$n++;
	my ($ok, $out, $err) = run_block($item->{sql});
	my ($first) = $item->{sql} =~ /^\s*(.*)$/m;
	ok($ok, "block $n runs: $first") or diag("stderr: $err\nstdout: $out");
	if (exists $item->{output})
	{
		is(trimmed($out), trimmed($item->{output}), "block $n prints what the page shows");
	}
}

# Beyond the page: every run for the tick succeeded, and they are several
my $runs = sql($node, q{SELECT count(*) FROM cron.job_run_details WHERE jobid = 1 AND status = 'succeeded'});
cmp_ok($runs, '>=', 3, "pg_cron ran the command $runs times for the day (before, after the change and the restart)");
is(sql($node, $workflows_and_ticks), '1 1', 'and the day has one workflow, deferred by its first run');
is(sql($node, q{SELECT count(*) FROM public.nightly_report}), '2', "the workflow's two steps ran once");
is(sql($node, q{SELECT count(*) FROM procq.workflow_ticks WHERE tick = 'nightly-report:2099-12-24' AND workflow_id IS NULL}),
	'1', 'the skipped tick is recorded without a workflow');

$node->stop;
done_testing();
