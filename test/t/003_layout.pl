# procq's source layout: calls between the C files go one way.  From the
# object files of the build (nm), which file calls which; no cycle, so in
# particular no two files call each other (src/procq.h has the layers).
use strict;
use warnings FATAL => 'all';
use Test::More;

my @objs = sort glob('src/*.o');
plan skip_all => 'no object files: build first (make test does)' unless @objs;

my (%defines, %needs);
for my $obj (@objs)
{
	my ($name) = $obj =~ m{src/(.*)\.o$};
	for (split /\n/, `nm '$obj'`)
	{
		my @f = split ' ';
		if (@f == 3 && $f[1] =~ /^[TDBR]$/) { $defines{ $f[2] } = $name; }
		elsif (@f == 2 && $f[0] eq 'U') { push @{ $needs{$name} }, $f[1]; }
	}
}
ok(scalar(keys %defines) > 0, 'nm lists the symbols of ' . scalar(@objs) . ' object files');

my %calls;
for my $file (keys %needs)
{
	for my $sym (@{ $needs{$file} })
	{
		my $to = $defines{$sym};
		$calls{$file}{$to} = 1 if defined $to && $to ne $file;
	}
}

# Depth-first search for a cycle; returns the files on it.
my (%state, @stack, @cycle);
sub visit
{
	my ($f) = @_;
	$state{$f} = 1;
	push @stack, $f;
	for my $g (sort keys %{ $calls{$f} // {} })
	{
		if (($state{$g} // 0) == 1)
		{
			my ($i) = grep { $stack[$_] eq $g } 0 .. $#stack;
			@cycle = (@stack[ $i .. $#stack ], $g);
			return 1;
		}
		return 1 if !$state{$g} && visit($g);
	}
	pop @stack;
	$state{$f} = 2;
	return 0;
}
for my $f (sort keys %calls)
{
	last if @cycle;
	visit($f) unless $state{$f};
}
ok(!@cycle, 'no cycle in the calls between src/*.c')
  or diag('cycle: ' . join(' -> ', @cycle));
note(join("\n", map { "$_ -> " . join(' ', sort keys %{ $calls{$_} }) } sort keys %calls));

done_testing();
