# Conditions on parents, end to end, run by the background workers (2 of
# them): two workflows of the same shape, deferred with defer_workflow,
#
#   extract -> transform_a, transform_b -> load           (run_after 'success')
#   transform_a, transform_b -> alert                     (run_after 'failure')
#   every other step -> cleanup                           (run_after 'completion')
#
# In the first, transform_b fails: load is cancelled, alert runs (a step
# failed) and records what it saw, cleanup runs after everything else has
# ended and records what procq.parents() showed it.  In the second nothing
# fails: alert ends cancelled ('all its parents succeeded'), cleanup runs.
# The order is checked against commit times (track_commit_timestamp): a
# 'completion' or 'failure' step's handler ran only after every parent's
# final state had committed.  Then procq.workflows has a row for each
# workflow, and procq.workflow_dot shows the edges' conditions.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('workflow_conditions',
	conf => [ 'procq.workers = 2', 'track_commit_timestamp = on' ],
	workers => 2);

sql($node, q{
-- ran: one row per handler run that committed (a failed run's row is
-- rolled back with it), with the moment the handler ran.
CREATE TABLE ran (job_id bigint PRIMARY KEY, task text NOT NULL,
                  at timestamptz NOT NULL DEFAULT clock_timestamp());
-- seen: what a cleanup or alert step saw of its parents through
-- procq.parents() while it ran.
CREATE TABLE seen (job_id bigint NOT NULL, parent_id bigint NOT NULL,
                   parent_task text, parent_status procq.job_status,
                   parent_step_key text, parent_error text);
-- step: the handler of every task; fails when args has "fail", after a
-- moment (so that the other steps are well under way).
CREATE FUNCTION step(args jsonb, job bigint) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep((args->>'sleep')::float8);
    IF args ? 'fail' THEN
        RAISE EXCEPTION 'job % fails as planned', job;
    END IF;
    INSERT INTO ran (job_id, task) SELECT job, task FROM procq.jobs WHERE id = job;
    RETURN jsonb_build_object('job', job);
END $$;
-- look: the handler of cleanup and alert: records procq.parents().
CREATE FUNCTION look(job bigint) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ran (job_id, task) SELECT job, task FROM procq.jobs WHERE id = job;
    INSERT INTO seen SELECT job, p.job_id, p.task, p.status, p.step_key, p.error
      FROM procq.parents(job) AS p;
    RETURN (SELECT count(*) FROM seen WHERE job_id = job);
END $$;
SELECT procq.register_handler('extract', 'sql', 'SELECT step($1, $2)');
SELECT procq.register_handler('transform', 'sql', 'SELECT step($1, $2)');
SELECT procq.register_handler('load', 'sql', 'SELECT step($1, $2)');
SELECT procq.register_handler('cleanup', 'sql', 'SELECT look($2)');
SELECT procq.register_handler('alert', 'sql', 'SELECT look($2)');
});

# The workflow's steps; $fail: transform_b fails.
sub steps
{
	my ($fail) = @_;
	my $b_args = $fail ? '{"sleep": 0.3, "fail": true}' : '{"sleep": 0.3}';
	return qq{[
  {"key": "extract", "task": "extract", "args": {"sleep": 0.2}},
  {"key": "transform_a", "task": "transform", "args": {"sleep": 0.6}, "depends_on": ["extract"]},
  {"key": "transform_b", "task": "transform", "args": $b_args, "depends_on": ["extract"]},
  {"key": "load", "task": "load", "args": {"sleep": 0}, "depends_on": ["transform_a", "transform_b"]},
  {"key": "alert", "task": "alert", "run_after": "failure", "depends_on": ["transform_a", "transform_b"]},
  {"key": "cleanup", "task": "cleanup", "run_after": "completion",
   "depends_on": ["extract", "transform_a", "transform_b", "load", "alert"]}
]};
}

# Defer both (each in its own call), keep each step's job id.
my %id;
for my $wf ([ 'bad', 1 ], [ 'good', 0 ])
{
	my ($name, $fail) = @$wf;
	my $rows = sql($node,
		'SELECT key, job_id FROM procq.defer_workflow(' . quote_literal(steps($fail)) . ')');
	for my $line (split /\n/, $rows)
	{
		my ($key, $job) = split /\|/, $line;
		$id{$name}{$key} = $job;
	}
	is(scalar keys %{ $id{$name} }, 6, "workflow $name: 6 steps deferred");
}
my $all = join(',', map { values %{ $id{$_} } } qw(bad good));
wait_final($node, 'the two workflows to end', $all, 120)
  or diag(sql($node, "SELECT id, task, run_after, status, pending_parents, failed_parents, error
                        FROM procq.jobs ORDER BY id"));

# --- Statuses.
my %want = (
	bad => {
		extract => 'succeeded', transform_a => 'succeeded', transform_b => 'failed',
		load => 'cancelled', alert => 'succeeded', cleanup => 'succeeded'
	},
	good => {
		extract => 'succeeded', transform_a => 'succeeded', transform_b => 'succeeded',
		load => 'succeeded', alert => 'cancelled', cleanup => 'succeeded'
	});
for my $name (qw(bad good))
{
	for my $key (sort keys %{ $want{$name} })
	{
		check_job($node, $id{$name}{$key}, "workflow $name: $key is $want{$name}{$key}",
			"status = '$want{$name}{$key}'");
	}
}
check_job($node, $id{bad}{load}, 'workflow bad: load was cancelled because of transform_b',
	"cancelled_by = $id{bad}{transform_b}");
check_job($node, $id{good}{alert},
	"workflow good: alert's error says all its parents succeeded",
	q{error LIKE '%all its parents succeeded%'});
is(sql($node, "SELECT count(*) FROM ran WHERE job_id = $id{good}{alert}"), '0',
	'workflow good: the alert handler never ran');

# --- What the clean-up and alert steps saw of their parents: every parent
# already final, with the status it ended in (in parent id order).
sub seen
{
	my ($job) = @_;
	return sql($node, "SELECT string_agg(parent_step_key || ':' || parent_status, ' '
	                           ORDER BY parent_id) FROM seen WHERE job_id = $job");
}
is(seen($id{bad}{cleanup}),
	'extract:succeeded transform_a:succeeded transform_b:failed load:cancelled alert:succeeded',
	'workflow bad: cleanup saw every parent final, transform_b failed and load cancelled');
is(seen($id{bad}{alert}), 'transform_a:succeeded transform_b:failed',
	'workflow bad: alert saw the failed transform_b');
like(sql($node, "SELECT parent_error FROM seen
                  WHERE job_id = $id{bad}{alert} AND parent_id = $id{bad}{transform_b}"),
	qr/fails as planned/, "workflow bad: alert saw transform_b's error");
is(seen($id{good}{cleanup}),
	'extract:succeeded transform_a:succeeded transform_b:succeeded load:succeeded alert:cancelled',
	'workflow good: cleanup saw every parent final, its alert cancelled');

# --- Order, against commit times.  A job's row is last written by the
# transaction that made it final, so the commit timestamp of its xmin is
# when its final state committed; a handler's row in "ran" has the moment
# it ran.  Every step whose handler ran did so after each parent's final
# state had committed ('success' steps: after each parent's success).
is( sql($node, q{
SELECT coalesce(string_agg(format('job %s (%s, run_after %s) ran at %s, parent %s (%s) ended at %s',
                                  c.id, c.task, c.run_after, r.at, p.id, p.status,
                                  pg_xact_commit_timestamp(p.xmin)), E'\n'), '')
  FROM ran r
  JOIN procq.jobs c ON c.id = r.job_id
  JOIN procq.job_dependencies d ON d.job_id = c.id
  JOIN procq.jobs p ON p.id = d.depends_on
 WHERE pg_xact_commit_timestamp(p.xmin) IS NULL
    OR pg_xact_commit_timestamp(p.xmin) >= r.at
    OR (c.run_after = 'success' AND p.status <> 'succeeded')}),
	'', 'every handler ran after the commit of each parent\'s final state');
# started_at/finished_at tell the same: each step started after its
# parents finished.
is( sql($node, q{
SELECT coalesce(string_agg(format('job %s started at %s, parent %s finished at %s',
                                  c.id, c.started_at, p.id, p.finished_at), E'\n'), '')
  FROM procq.jobs c
  JOIN procq.job_dependencies d ON d.job_id = c.id
  JOIN procq.jobs p ON p.id = d.depends_on
 WHERE c.started_at IS NOT NULL AND (p.finished_at IS NULL OR p.finished_at > c.started_at)}),
	'', 'every step started after each of its parents finished');
# The clean-up of the failing workflow ran last of its workflow, and its
# alert after transform_b had failed.
for my $name (qw(bad good))
{
	is( sql($node, "SELECT count(*) FROM procq.jobs
	                  WHERE workflow_id = (SELECT workflow_id FROM procq.jobs WHERE id = $id{$name}{cleanup})
	                    AND id <> $id{$name}{cleanup}
	                    AND finished_at > (SELECT started_at FROM procq.jobs WHERE id = $id{$name}{cleanup})"),
		'0', "workflow $name: cleanup started after every other job of its workflow ended");
}

# --- procq.workflows: one row for each, with its state and counts.
for my $name (qw(bad good))
{
	is(sql($node, "SELECT count(DISTINCT workflow_id) FROM procq.jobs
	                WHERE id IN (" . join(',', values %{ $id{$name} }) . ")"),
		'1', "workflow $name: its 6 jobs share one workflow_id");
}
my $bad_wf = sql($node, "SELECT workflow_id FROM procq.jobs WHERE id = $id{bad}{extract}");
my $good_wf = sql($node, "SELECT workflow_id FROM procq.jobs WHERE id = $id{good}{extract}");
is($bad_wf, $id{bad}{extract}, 'workflow bad: its id is that of its first job');
is( sql($node, "SELECT format('%s %s/%s/%s/%s/%s/%s %s', state, todo, doing, succeeded, failed, cancelled,
                              skipped, finished_at IS NOT NULL AND finished_at >= created_at)
                  FROM procq.workflows WHERE workflow_id = $bad_wf"),
	'failed 0/0/4/1/1/0 t',
	'procq.workflows: bad is failed, 4 succeeded, 1 failed, 1 cancelled, none skipped, finished');
is( sql($node, "SELECT format('%s %s/%s/%s/%s/%s/%s %s', state, todo, doing, succeeded, failed, cancelled,
                              skipped, finished_at IS NOT NULL AND finished_at >= created_at)
                  FROM procq.workflows WHERE workflow_id = $good_wf"),
	'succeeded 0/0/5/0/1/1 t',
	'procq.workflows: good has 5 succeeded and its alert skipped (cancelled, all its parents succeeded): succeeded');

# --- workflow_dot: every job a node, every edge there with its condition.
my $dot = sql($node, "SELECT procq.workflow_dot($bad_wf)");
like($dot, qr/^digraph/, 'workflow_dot is a Graphviz digraph');
my %task = (extract => 'extract', transform_a => 'transform', transform_b => 'transform',
	load => 'load', alert => 'alert', cleanup => 'cleanup');
for my $key (sort keys %{ $id{bad} })
{
	like($dot, qr/^\s*\Q$id{bad}{$key}\E \[label="\Q$id{bad}{$key}: $task{$key}\E"/m,
		"workflow_dot has a node for $key labelled \"$id{bad}{$key}: $task{$key}\"");
}
for my $edge (
	[ 'extract', 'transform_a', undef ], [ 'transform_b', 'load', undef ],
	[ 'transform_b', 'alert', 'failure' ], [ 'load', 'cleanup', 'completion' ],
	[ 'alert', 'cleanup', 'completion' ])
{
	my ($from, $to, $cond) = @$edge;
	my $e = "$id{bad}{$from} -> $id{bad}{$to}";
	if (defined $cond)
	{
		like($dot, qr/^\s*\Q$e\E \[label="\Q$cond\E"/m,
			"workflow_dot: the edge $from -> $to is labelled with its condition $cond");
	}
	else
	{
		like($dot, qr/^\s*\Q$e\E;$/m, "workflow_dot: the edge $from -> $to ('success') has no label");
	}
}
is(() = $dot =~ / -> /g, 11, 'workflow_dot of bad has its 11 edges, none of good\'s');
unlike($dot, qr/^\s*\Q$id{good}{extract}\E \[/m, "workflow_dot of bad has no node of good");

done_testing();
