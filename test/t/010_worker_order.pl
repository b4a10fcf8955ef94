# Three background workers run SQL and shell jobs of a dependency graph
# (extract -> 3 transforms -> load, and a fan-in of load and two independent
# jobs) in dependency order: every job succeeds, once, and starts only after
# all its parents finished; shell results are stored as JSON.  Jobs of a
# task without a handler, or whose handler was unregistered, stay todo for
# procq.fetch_job.  The workers show in pg_stat_activity and
# procq.worker_status, with the job they are running.
#
# Each group of checks that the bash test (test/shell/worker_order.sh)
# closed with one "ok" line is a subtest of that name.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('order', conf => [ 'procq.workers = 3', 'procq.enable_shell = on' ]);

my $step_sh = $node->basedir . '/step.sh';
open my $fh, '>', $step_sh or die "could not write $step_sh: $!";
print $fh <<'EOF';
#!/bin/sh
# Shell handler of 010_worker_order.pl: prints its job as JSON (args from stdin too).
stdin=$(cat)
sleep 0.1
printf '{"job": %s, "task": "%s", "args": %s, "stdin": %s}\n' \
    "$PROCQ_JOB_ID" "$PROCQ_TASK" "$PROCQ_ARGS" "$stdin"
EOF
close $fh;
chmod 0755, $step_sh;

sql($node, q{
CREATE TABLE effects (job_id bigint PRIMARY KEY, at timestamptz NOT NULL);
CREATE TABLE released (job_id bigint PRIMARY KEY);
-- Runs until the test releases the job (at most 60 s).
CREATE FUNCTION wait_for_release(job bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..600 LOOP
        IF EXISTS (SELECT 1 FROM released WHERE job_id = job) THEN RETURN job; END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RAISE EXCEPTION 'job % was not released within 60 s', job;
END $$;
SELECT procq.register_handler(t, 'sql',
    'INSERT INTO effects SELECT $2, clock_timestamp() FROM pg_sleep(0.05) RETURNING job_id')
FROM unnest(ARRAY['extract', 'transform', 'load', 'side', 'gone']) t;
}
	  . "SELECT procq.register_handler(t, 'shell', "
	  . quote_literal($step_sh) . ")\n"
	  . q{FROM unnest(ARRAY['transform_sh', 'side_sh', 'report_sh']) t;
SELECT procq.register_handler('slow', 'sql', 'SELECT wait_for_release($2)');
});

# --- The workers are visible.
subtest "pg_stat_activity shows 3 'procq worker' backends; procq.worker_status lists them" => sub {
	wait_for($node,
		"SELECT count(*) = 3 FROM pg_stat_activity WHERE backend_type = 'procq worker'",
		"timed out waiting for 3 'procq worker' rows in pg_stat_activity");
	is( sql($node, q{SELECT string_agg(worker, ',' ORDER BY worker) FROM procq.worker_status
         WHERE pid IN (SELECT pid FROM pg_stat_activity WHERE backend_type = 'procq worker')}),
		'procq worker 1,procq worker 2,procq worker 3',
		'procq.worker_status');
};

# --- A running job shows in pg_stat_activity and procq.worker_status.
my $slow = sql($node, q{SELECT procq.defer('slow')});
subtest "while job $slow runs, its worker shows 'job $slow (slow)' and state 'running sql'" => sub {
	wait_for($node,
		"SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                    WHERE backend_type = 'procq worker' AND query = 'job $slow (slow)')",
		"timed out waiting for pg_stat_activity to show 'job $slow (slow)' for a procq worker");
	is( sql($node, "SELECT state || ' ' || job_id || ' ' || task || ' ' || (job_started_at IS NOT NULL)
         FROM procq.worker_status WHERE job_id = $slow"),
		"running sql $slow slow true",
		"worker_status while job $slow runs");
	is( sql($node, "SELECT count(*) FROM procq.worker_status w JOIN pg_stat_activity a USING (pid)
         WHERE w.job_id = $slow AND a.query = 'job $slow (slow)'"),
		1,
		"worker_status and pg_stat_activity agree on who runs job $slow");
};
sql($node, "INSERT INTO released VALUES ($slow)");
wait_final($node, 'the released slow job', $slow);
is(sql($node, "SELECT status FROM procq.jobs WHERE id = $slow"),
	'succeeded', 'slow job succeeded');

# --- unregister_handler: the handler worked, then is gone.
my $gone = sql($node, q{SELECT procq.defer('gone')});
wait_final($node, 'the first job of task gone', $gone);
is(sql($node, "SELECT status FROM procq.jobs WHERE id = $gone"),
	'succeeded', 'job of task gone succeeded');
is(sql($node, q{SELECT procq.unregister_handler('gone')}),
	't', "unregister_handler('gone') returns true");
is(sql($node, q{SELECT procq.unregister_handler('gone')}),
	'f', "unregister_handler('gone') twice returns false");

# --- The graph, three times over, plus a job without handler and one whose
# handler was unregistered; these two have the highest priority, so a
# worker that could take them would take them before the others.
my $workflow = q{[
  {"key": "extract", "task": "extract", "args": {"n": N}},
  {"key": "t1", "task": "transform", "args": {"n": N, "t": 1}, "depends_on": ["extract"]},
  {"key": "t2", "task": "transform_sh", "args": {"n": N, "t": 2}, "depends_on": ["extract"]},
  {"key": "t3", "task": "transform", "args": {"n": N, "t": 3}, "depends_on": ["extract"]},
  {"key": "load", "task": "load", "args": {"n": N}, "depends_on": ["t1", "t2", "t3"]},
  {"key": "side1", "task": "side_sh", "args": {"n": N}},
  {"key": "side2", "task": "side", "args": {"n": N}},
  {"key": "report", "task": "report_sh", "args": {"n": N}, "depends_on": ["load", "side1", "side2"]}]};
my $graphs = join '',
  map { (my $w = $workflow) =~ s/N/$_/g; "SELECT count(*) FROM procq.defer_workflow('$w');\n" } 1 .. 3;
my ($first) = split /\n/, sql($node, qq{BEGIN;
SELECT procq.defer('no_handler', priority => 100);
SELECT procq.defer('gone', priority => 100);
${graphs}COMMIT});
my $orphan = $first;
my $gone2 = $first + 1;
my $graph = "SELECT id FROM procq.jobs WHERE id > $gone2";
wait_final($node, 'the 24 jobs of the graphs', $graph);

my $got = sql($node,
	"SELECT count(*) || ' ' || count(*) FILTER (WHERE status = 'succeeded') FROM procq.jobs WHERE id > $gone2");
is($got, '24 24', 'all 24 SQL and shell jobs of the graphs succeeded')
  or diag('graph jobs [total succeeded] = [' . $got . ']: '
	  . sql($node, "SELECT string_agg(id || ' ' || task || ' ' || status || ' ' || coalesce(error, ''), E'\\n')
    FROM procq.jobs WHERE id > $gone2 AND status <> 'succeeded'"));

is( sql($node, "SELECT count(*) || ' ' || count(*) FILTER (WHERE c.started_at < p.finished_at)
         FROM procq.job_dependencies d JOIN procq.jobs c ON c.id = d.job_id
         JOIN procq.jobs p ON p.id = d.depends_on WHERE d.job_id > $gone2"),
	'27 0',
	'every job started after all its parents finished (27 edges)');

subtest "each SQL job wrote its effect once, after its SQL parents' effects" => sub {
	is( sql($node, "SELECT count(*) || ' ' || count(e.job_id) || ' ' || count(*) FILTER (WHERE j.result = to_jsonb(j.id))
         FROM procq.jobs j LEFT JOIN effects e ON e.job_id = j.id
         WHERE j.id > $gone2 AND j.task IN ('extract', 'transform', 'load', 'side')"),
		'15 15 15',
		'[SQL jobs, with an effect, with result = id]');
	is( sql($node, q{SELECT count(*) || ' ' || count(*) FILTER (WHERE ec.at < ep.at)
         FROM procq.job_dependencies d JOIN effects ec ON ec.job_id = d.job_id
         JOIN effects ep ON ep.job_id = d.depends_on}),
		'12 0',
		'[SQL-to-SQL edges, child effect before parent effect]');
};

is( sql($node, "SELECT count(*) || ' ' || count(*) FILTER (WHERE jsonb_typeof(result) = 'object'
             AND result = jsonb_build_object('job', id, 'task', task, 'args', args, 'stdin', args))
         FROM procq.jobs WHERE id > $gone2 AND task LIKE '%\\_sh'"),
	'9 9',
	'the 9 shell jobs stored their printed JSON as a JSON object result');
note('the graph jobs ran on '
	  . sql($node, "SELECT count(DISTINCT worker) FROM procq.jobs WHERE id > $gone2")
	  . ' worker(s)');

# --- Jobs without a handler stayed todo; an external worker takes them.
subtest 'jobs of a task without handler, or after unregister_handler, stay todo for procq.fetch_job' => sub {
	is( sql($node, "SELECT string_agg(id || ' ' || status || ' ' || attempts || ' ' || (worker IS NULL), ',' ORDER BY id)
         FROM procq.jobs WHERE id IN ($orphan, $gone2)"),
		"$orphan todo 0 true,$gone2 todo 0 true",
		'jobs of a task without handler / with an unregistered handler are todo and untouched');
	my $fetched = sql($node, q{SELECT id FROM procq.fetch_job(worker => 'external')}) . ','
	  . sql($node, q{SELECT id FROM procq.fetch_job(worker => 'external')});
	is($fetched, "$orphan,$gone2", 'procq.fetch_job returns them');
};

$node->stop;
done_testing();
