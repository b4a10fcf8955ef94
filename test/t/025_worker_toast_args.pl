# Defect 1 of issue 7: a shell job whose args are large enough to be stored
# out of line (TOASTed) must run like any other.  The worker used to read
# the args after its fetch transaction had ended (a toast pointer copied,
# detoasted later), which crashed the server or stranded the job.  Here the
# args are 20 kB of random hex (incompressible enough to be stored out of
# line, checked below); the program counts the bytes of args it got on
# stdin and in PROCQ_ARGS, and the job must succeed, twice in a row, with no
# worker dying on the way.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('toast_args',
	conf => [ 'procq.workers = 1', 'procq.enable_shell = on' ], workers => 1);
register($node, 'count', 'shell', q{/bin/sh -c 'printf "[%s, %s]" "$(wc -c)" "${#PROCQ_ARGS}"'});
my $pid = sql($node, 'SELECT pid FROM procq.worker_status');

my @ids;
for (1 .. 2)
{
	push @ids, sql($node, q{SELECT procq.defer('count',
         jsonb_build_object('blob', (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 625))))});
}
my $ids = join(',', @ids);

# The args really are out of line: the toast table of procq.jobs has rows.
my $toast = sql($node, q{SELECT reltoastrelid::regclass FROM pg_class WHERE oid = 'procq.jobs'::regclass});
ok(sql($node, "SELECT count(*) > 0 FROM $toast"), "the args are stored out of line in $toast");

wait_final($node, 'the shell jobs with toasted args', $ids, 60);
for my $id (@ids)
{
	my $len = sql($node, "SELECT octet_length(args::text) FROM procq.jobs WHERE id = $id");
	check_job($node, $id, "job $id with $len bytes of toasted args succeeded and its program read them all",
		"status = 'succeeded' AND result = jsonb_build_array($len, $len)");
}
is(sql($node, 'SELECT pid FROM procq.worker_status'), $pid, 'the worker that ran them is still the same process');
unlike(slurp_file($node->logfile), qr/was terminated by signal|server process .* exited with exit code/,
	'no server process died');

$node->stop;
done_testing();
