# The shell handler runner (src/shell*.c) on its own, outside PostgreSQL.
# Builds test/shell_runner/test_shell.c with src/shell*.c and runs it; it
# prints TAP of its own and exits non-zero if a test failed.  Needs gcc
# only, no database server.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;

my $root = abs_path(dirname(__FILE__) . '/../..');
my $tmp = PostgreSQL::Test::Utils::tempdir('shell_runner');
my $bin = "$tmp/test_shell";

system('sh', '-c', 'command -v gcc >/dev/null') == 0
  or BAIL_OUT('gcc is needed to build test/shell_runner/test_shell.c');

# Also the warnings the extension's build uses, so that src/shell*.c keep
# building there.
my ($cc_out, $cc_err) = ('', '');
my $built = IPC::Run::run(
	[
		'gcc', '-std=gnu99', '-Wall', '-Wextra', '-Werror',
		'-Wmissing-prototypes', '-Wdeclaration-after-statement',
		'-Wpointer-arith', '-Wformat-security', '-O2', '-o', $bin,
		"$root/test/shell_runner/test_shell.c", glob("$root/src/shell*.c")
	],
	'>', \$cc_out, '2>', \$cc_err);
ok($built, 'test/shell_runner/test_shell.c builds')
  or diag("test/shell_runner/test_shell.c does not build:\n$cc_out$cc_err");
if (!$built)
{
	done_testing();
	exit;
}

# Run it from the repository root, as the bash test did.
my ($out, $err) = ('', '');
IPC::Run::run([ 'timeout', '120', $bin ],
	'<', \undef, '>', \$out, '2>', \$err, init => sub { chdir $root });
my $rc = $? >> 8;
note("test_shell output:\n$out");
diag("test_shell stderr:\n$err") if $err ne '';

ok($rc != 124, 'test_shell finishes within 120 s')
  or diag('test_shell did not finish within 120 s');
is($rc, 0, 'test_shell exits with status 0')
  or diag("test_shell exited with status $rc");
like($out, qr/^1\.\.[0-9]/m, 'test_shell prints a TAP plan')
  or diag('test_shell printed no TAP plan');
unlike($out, qr/^not ok/m, 'shell runner tests passed (no "not ok" line)')
  or diag("some shell runner tests failed:\n" . join("\n", grep { /^not ok/ } split /\n/, $out));

done_testing();
