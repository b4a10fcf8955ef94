# procq's internal statements run with search_path pinned to pg_catalog,
# pg_temp (pq_exec in src/spi_exec.c), so an unqualified function or
# operator can only be pg_catalog's (functions and operators are never
# looked up in pg_temp).  An unqualified table name, though, would be looked
# up in pg_temp after pg_catalog: a temporary table of the caller's could
# stand in for it.  So every relation an internal statement names must be
# schema-qualified (or be one of the statement's own WITH queries), and
# every statement must go through pq_exec.
#
# The statements are read from the built library (procq.so), where the
# compiler has already pasted together the string literals and macros they
# are made of; statements are the strings that begin with SELECT, WITH,
# UPDATE, INSERT or DELETE.  Needs no server.
use strict;
use warnings FATAL => 'all';
use Test::More;

my $so = 'procq.so';
ok(-f $so, "$so is built") or BAIL_OUT("build procq first");
my $bin = do { local $/; open my $fh, '<:raw', $so or die "$so: $!"; <$fh> };
my @stmts = grep { /^\s*(SELECT|WITH|UPDATE|INSERT|DELETE)\s/ } ($bin =~ /([\x20-\x7e\t\n]{12,})\0/g);
cmp_ok(scalar(@stmts), '>=', 50, 'the internal statements are found in the library (' . scalar(@stmts) . ')');

# Words that follow FROM, JOIN, UPDATE, INTO without being a relation.
my %not_relation = map { $_ => 1 } qw(SET SKIP OF LATERAL NOWAIT ONLY);
my @unqualified;
for my $sql (@stmts)
{
	my %cte = map { lc($_) => 1 } ($sql =~ /\b(\w+)\s*(?:\([\w\s,]*\))?\s*AS\s+(?:NOT\s+)?(?:MATERIALIZED\s+)?\(/gi);
	while ($sql =~ /\b(?:FROM|JOIN|UPDATE|INTO)\s+([A-Za-z_]\w*)(\s*[.(])?/gi)
	{
		my ($name, $next) = ($1, $2);
		next if defined $next;    # schema.relation, or a function call
		next if $not_relation{ uc $name } || $cte{ lc $name };
		push @unqualified, "$name in: $sql";
	}
}
is(scalar(@unqualified), 0, 'every relation of an internal statement is schema-qualified')
  or diag(join("\n", @unqualified));

# Every statement runs through pq_exec (search_path pinned, as the owner);
# the only other SPI calls are the handlers' own statements (run_sql.c).
my @spi;
for my $c (glob('src/*.c'))
{
	next if $c =~ m{/(spi_exec|run_sql)\.c$};
	open my $fh, '<', $c or die "$c: $!";
	while (<$fh>)
	{
		push @spi, "$c:$.: $_" if /\bSPI_(execute|exec|prepare|cursor_open|cursor_parse_open)\w*\s*\(/;
	}
}
is(scalar(@spi), 0, 'no SPI statement outside pq_exec (and the handlers)') or diag(join('', @spi));

done_testing();
