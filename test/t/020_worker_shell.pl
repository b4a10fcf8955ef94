# The procq background workers run shell handlers safely.  A handler past
# its timeout fails ('timed out') and its whole process group (a
# backgrounded grandchild too) is killed; stdout over
# procq.shell_output_limit is cut (job succeeded, error says so); a non-zero
# exit fails with 'exit status N' and the tail of stderr; a missing program
# fails naming it; job arguments full of shell metacharacters reach the
# program verbatim through PROCQ_ARGS and stdin and are never interpreted,
# nor are the words of the command; PROCQ_JOB_ID and PROCQ_TASK are set;
# JSON output becomes the jsonb result, other text a JSON string; with
# procq.enable_shell off shell jobs wait as todo and run once it is on; only
# superusers may register shell handlers.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;
use File::Find;
use File::Path qw(make_path);

my $node = procq_node('shell',
	conf => [
		'procq.workers = 2', 'procq.enable_shell = on',
		"procq.shell_output_limit = '64kB'"
	],
	workers => 2);
my $n = nonce();
my $d = $node->basedir . '/files';    # the handlers run as postgres: they may write here
make_path("$d/canary");
open my $fh, '>', "$d/canary/keep" or die "could not create $d/canary/keep: $!";
close $fh;

register($node, 'hang', 'shell',
	"/bin/sh -c 'sleep 300.$n & echo \$! >$d/bg.pid; sleep 300.$n'", '500ms');
register($node, 'big', 'shell', "/bin/sh -c 'head -c 1000000 /dev/zero | tr -c x x'");
register($node, 'bad_exit', 'shell', "/bin/sh -c 'echo out; seq 1 5000 >&2; exit 3'");
register($node, 'missing', 'shell', "procq_no_such_program_$n --flag");
register($node, 'missing_abs', 'shell', "/nonexistent/procq_no_such_program_$n");
register($node, 'via_stdin', 'shell', 'cat');
register($node, 'via_env', 'shell', 'printenv PROCQ_ARGS');
register($node, 'ids', 'shell', 'printenv PROCQ_JOB_ID PROCQ_TASK');
register($node, 'json_out', 'shell', q{echo '{"a": [1, 2.5, null], "b": "x"}'});
register($node, 'text_out', 'shell', q{echo 'hello procq'});
register($node, 'bad_json_out', 'shell', q[echo '{not json']);
register($node, 'words', 'shell',
	"echo \$HOME \$(touch $d/pwned_cmd) ; `touch $d/pwned_cmd2` '*' \"a  b\"");

# Arguments that a shell would run.
my $args_sql = <<'SQL';
SELECT jsonb_build_object(
    'subst', '$(touch ' || :'d' || '/pwned_subst)',
    'backticks', '`touch ' || :'d' || '/pwned_bt`',
    'semicolon', 'x; rm -rf ' || :'d' || '/canary; touch ' || :'d' || '/pwned_semi',
    'quotes', $q$it's "double" and 'single' \" \\ $q$,
    'others', E'a && touch ' || :'d' || E'/pwned_and | tee ' || :'d' || E'/pwned_pipe > '
              || :'d' || E'/pwned_redir\n$HOME * ~ ${PATH}')
SQL
my $dq = quote_literal($d);
$args_sql =~ s/:'d'/$dq/g;
my $args = sql($node, $args_sql);

my $hang = defer($node, 'hang');
my $big = defer($node, 'big');
my $bad_exit = defer($node, 'bad_exit');
my $missing = defer($node, 'missing');
my $missing_abs = defer($node, 'missing_abs');
my $via_stdin = defer($node, 'via_stdin', $args);
my $via_env = defer($node, 'via_env', $args);
my $ids = defer($node, 'ids');
my $json_out = defer($node, 'json_out');
my $text_out = defer($node, 'text_out');
my $bad_json_out = defer($node, 'bad_json_out');
my $words = defer($node, 'words');
wait_for($node,
	"(SELECT count(*) FROM procq.jobs WHERE status IN ('todo', 'doing')) = 0",
	'shell jobs did not all end', 60,
	"SELECT id, task, status, worker FROM procq.jobs WHERE status IN ('todo', 'doing')");

check_job($node, $hang, "a handler past its timeout fails with 'timed out'",
	"status = 'failed' AND error LIKE '%timed out%'");
{
	my $ok = 1;
	if (!-s "$d/bg.pid")
	{
		diag("the timed-out handler never started its grandchild");
		$ok = 0;
	}
	if (!wait_gone("300\\.$n", 10))
	{
		diag("a process of the timed-out handler's group survives: "
			  . `pgrep -af -- '300\\.$n'`);
		$ok = 0;
	}
	ok($ok, "the timed-out handler's whole process group is gone (background grandchild too)");
}

check_job($node, $big, 'output over the cap: succeeded, result cut to 64 kB, error says so',
	"status = 'succeeded' AND result #>> '{}' = repeat('x', 65536)
     AND error LIKE '%cut at 64 kB%'");
check_job($node, $bad_exit, "a non-zero exit fails with 'exit status 3' and the stderr tail",
	"status = 'failed' AND error LIKE 'exit status 3%' AND error LIKE E'%\\n4999\\n5000%'
     AND error NOT LIKE E'%\\n10\\n11\\n%' AND length(error) < 5000");
check_job($node, $missing, 'a program not found in PATH fails naming it',
	"status = 'failed' AND error LIKE '%procq_no_such_program_$n%'");
check_job($node, $missing_abs, 'a missing program path fails naming it',
	"status = 'failed' AND error LIKE '%/nonexistent/procq_no_such_program_$n%'");

check_job($node, $via_stdin, 'metacharacters in args reach the program verbatim on stdin',
	"status = 'succeeded' AND result = args AND args->>'subst' LIKE '\$(touch %'");
check_job($node, $via_env, 'metacharacters in args reach the program verbatim in PROCQ_ARGS',
	"status = 'succeeded' AND result = args");
check_job($node, $words, "the command's words are not expanded either",
	"status = 'succeeded' AND result = to_jsonb('\$HOME \$(touch $d/pwned_cmd) ; `touch $d/pwned_cmd2` * a  b'::text)"
);
{
	my @pwned;
	find(sub { push @pwned, $File::Find::name if /^pwned/ }, $d);
	my $ok = 1;
	if (@pwned)
	{
		diag("shell metacharacters were interpreted, files created: @pwned");
		$ok = 0;
	}
	if (!-f "$d/canary/keep")
	{
		diag('shell metacharacters were interpreted: the canary dir was removed');
		$ok = 0;
	}
	ok($ok, 'no metacharacter was interpreted (no file created, canary kept)');
}

check_job($node, $ids, 'PROCQ_JOB_ID and PROCQ_TASK are set',
	"status = 'succeeded' AND result = to_jsonb(id || E'\\n' || task)");
check_job($node, $json_out, 'JSON on stdout becomes the jsonb result',
	q{status = 'succeeded' AND result = '{"a": [1, 2.5, null], "b": "x"}'::jsonb});
check_job($node, $text_out, 'plain text on stdout becomes a JSON string (no trailing newline)',
	q{status = 'succeeded' AND result = '"hello procq"'::jsonb});
check_job($node, $bad_json_out, 'text that is not valid JSON becomes a JSON string',
	q[status = 'succeeded' AND result = '"{not json"'::jsonb]);

# procq.enable_shell off: shell jobs stay todo while SQL jobs still run.
sql($node, 'ALTER SYSTEM SET procq.enable_shell = off');
sql($node, 'SELECT pg_reload_conf()');
sleep 1;    # let the idle workers read the new setting
register($node, 'probe', 'sql', 'SELECT $2');
my $probe = defer($node, 'probe');
wait_for($node, "(SELECT status = 'succeeded' FROM procq.jobs WHERE id = $probe)",
	'SQL probe job did not run');
my $off = defer($node, 'text_out');
$probe = defer($node, 'probe');
wait_for($node, "(SELECT status = 'succeeded' FROM procq.jobs WHERE id = $probe)",
	'SQL probe job did not run');
sleep 2;    # ten poll intervals
check_job($node, $off,
	'with procq.enable_shell off a shell job stays todo (a later SQL job ran)',
	"status = 'todo' AND attempts = 0");
sql($node, 'ALTER SYSTEM SET procq.enable_shell = on');
sql($node, 'SELECT pg_reload_conf()');
# A final status, not just "not todo": the job is 'doing' while it runs.
wait_for($node,
	"(SELECT status NOT IN ('todo', 'doing') FROM procq.jobs WHERE id = $off)",
	'the shell job did not run after procq.enable_shell was turned on');
check_job($node, $off, 'after turning procq.enable_shell on it runs', "status = 'succeeded'");

# Shell handlers are for superusers; the same role, an administrator of
# handlers (README, Privileges), may register a SQL one.
sql($node, q{CREATE ROLE plain LOGIN; GRANT USAGE ON SCHEMA procq TO plain;
     GRANT EXECUTE ON FUNCTION procq.register_handler(text, text, text, interval) TO plain;
     GRANT SELECT, INSERT, UPDATE, DELETE ON procq.handlers TO plain});
{
	my $ok = 1;
	my ($ret, $out, $err) = $node->psql('postgres',
		q{SELECT procq.register_handler('plain_shell', 'shell', 'true')},
		extra_params => [ '-U', 'plain', '-v', 'VERBOSITY=verbose' ]);
	if ($ret == 0)
	{
		diag('a non-superuser registered a shell handler');
		$ok = 0;
	}
	elsif ("$out$err" !~ /42501/)
	{
		diag("a non-superuser's shell handler was refused, but not with 42501: $out$err");
		$ok = 0;
	}
	if (sql($node, q{SELECT count(*) FROM procq.handlers WHERE task = 'plain_shell'}) ne '0')
	{
		diag('the refused shell handler was stored');
		$ok = 0;
	}
	($ret, $out, $err) = $node->psql('postgres',
		q{SELECT procq.register_handler('plain_sql', 'sql', 'SELECT 1')},
		extra_params => [ '-U', 'plain' ]);
	if ($ret != 0)
	{
		diag("the non-superuser could not register a SQL handler either: $err");
		$ok = 0;
	}
	ok($ok, 'a non-superuser cannot register a shell handler (42501), but can a SQL one');
}

$node->stop;
done_testing();
