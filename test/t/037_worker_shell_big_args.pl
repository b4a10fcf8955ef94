# A shell job's args reach its program on stdin, whatever their size, and in
# PROCQ_ARGS when they fit in one environment string (issue 8).  Linux
# refuses an environment string over 128 KiB (MAX_ARG_STRLEN) with E2BIG,
# and the job used to fail at exec ("Argument list too long") although the
# README promised PROCQ_ARGS.  Here: args of 200 KiB run, the program reads
# them all on stdin and finds PROCQ_ARGS unset; args of 100 KiB still come
# in PROCQ_ARGS too.  The program prints [bytes on stdin, PROCQ_ARGS set?,
# bytes of PROCQ_ARGS].
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('shell_big_args',
	conf => [ 'procq.workers = 1', 'procq.enable_shell = on' ], workers => 1);
register($node, 'count', 'shell',
	q{/bin/sh -c 's=0; [ -n "${PROCQ_ARGS+x}" ] && s=1; printf "[%s, %s, %s]" "$(wc -c)" "$s" "${#PROCQ_ARGS}"'});

my %id;
for my $kib (100, 200)
{
	$id{$kib} = sql($node,
		"SELECT procq.defer('count', jsonb_build_object('blob', repeat('x', $kib * 1024)))");
}
wait_final($node, 'the shell jobs with big args', join(',', values %id), 60);

my $len100 = sql($node, "SELECT octet_length(args::text) FROM procq.jobs WHERE id = $id{100}");
check_job($node, $id{100}, "a job with $len100 bytes of args gets them on stdin and in PROCQ_ARGS",
	"status = 'succeeded' AND result = jsonb_build_array($len100, 1, $len100)");
my $len200 = sql($node, "SELECT octet_length(args::text) FROM procq.jobs WHERE id = $id{200}");
check_job($node, $id{200}, "a job with $len200 bytes of args runs, gets them on stdin, PROCQ_ARGS unset",
	"status = 'succeeded' AND result = jsonb_build_array($len200, 0, 0)");

$node->stop;
done_testing();
