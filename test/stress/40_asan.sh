#!/usr/bin/env bash
# 40_asan.sh: the whole test suite (scripts/run-tests.sh: pg_regress,
# isolation, pgTAP, TAP) against procq built with AddressSanitizer and
# UndefinedBehaviorSanitizer (make test-asan; make stress runs it too).
#
# 1. A private copy of the PostgreSQL 15 installation in a temp dir (the
#    library and share trees under a prefix, like the /opt/pg<name> copies:
#    a server started from the copy's bin directory loads the copy's
#    procq.so).
# 2. procq built out of tree with -fsanitize=address,undefined and
#    -fno-sanitize-recover=all (any UBSan finding is fatal), installed into
#    the copy with DESTDIR.  The system's procq.so is not touched.
# 3. The copy's postgres becomes a small wrapper that execs the real binary
#    with gcc's libasan preloaded (the instrumented procq.so needs the
#    runtime first in the library list) and sanitizer options that write
#    every report to a file in the sanitizer directory
#    (log_path) and abort the process on the first finding, so the
#    backend's death is also visible to the tests.  Leak detection is off:
#    PostgreSQL frees memory by dropping contexts and leaves the rest to
#    process exit.
# 4. scripts/run-tests.sh with PQ_PGBIN pointing at the copy: all servers
#    of all suites (the regress cluster and every TAP cluster) run
#    instrumented.
#
# Clean means: the suite passes, no report file exists, and no
# "runtime error" or "Sanitizer" line is in the output.  Only procq.so is
# instrumented; the interceptors (malloc, memcpy, strlen...) check every
# call of the process, so PostgreSQL's own calls are checked too.
#
#   40_asan.sh [TAP-TEST...]   only these TAP files (as run-tests.sh)
#   PQ_NO_TAP=1 40_asan.sh     regress, isolation and pgTAP only
#   PQ_ASAN_KEEP=1             keep the temp dir (kept anyway on failure)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
san_flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

libasan=$(gcc -print-file-name=libasan.so)
[[ -e $libasan ]] || { echo "40_asan: gcc's libasan.so is missing" >&2; exit 1; }
libasan=$(readlink -f "$libasan")

work=$(mktemp -d "${TMPDIR:-/tmp}/procq-asan.XXXXXX")
chmod 755 "$work"
ok=0
cleanup() {
    if ((ok)) && [[ -z ${PQ_ASAN_KEEP:-} ]]; then
        rm -rf -- "$work"
    else
        echo "40_asan: kept $work (build, installation copy, sanitizer reports, run.log)"
    fi
}
trap cleanup EXIT

# 1. The copy: bindir's parent (/usr/lib/postgresql/15) and sharedir.
bindir=$("$PG_CONFIG" --bindir)
sharedir=$("$PG_CONFIG" --sharedir)
libroot=${bindir%/bin}
prefix=$work/pg
for d in "$libroot" "$sharedir"; do
    mkdir -p "$prefix${d%/*}"
    cp -a "$d" "$prefix${d%/*}/"
done
pgbin=$prefix$bindir

# 2. The instrumented build, out of tree (the tree's own objects stay).
echo "---- building procq with $san_flags"
start=$SECONDS
mkdir "$work/build"
tar --exclude=.git --exclude=tmp_check --exclude=results --exclude=output_iso \
    --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . | tar -C "$work/build" -xf -
make -C "$work/build" -s -j2 PG_CONFIG="$PG_CONFIG" with_llvm=no COPT="$san_flags" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; echo "40_asan: the instrumented build failed" >&2; exit 1; }
make -C "$work/build" -s install PG_CONFIG="$PG_CONFIG" with_llvm=no DESTDIR="$prefix" >>"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; echo "40_asan: install into the copy failed" >&2; exit 1; }
so=$prefix$("$PG_CONFIG" --pkglibdir)/procq.so
syms=$(nm -D "$so")
grep -q __asan_report <<<"$syms" || { echo "40_asan: $so is not instrumented" >&2; exit 1; }
grep -q __ubsan_handle <<<"$syms" || { echo "40_asan: $so has no UBSan checks" >&2; exit 1; }
echo "built and installed into $prefix in $((SECONDS - start)) s"

# 3. The server wrapper and the runtime shim.  The sanitizer directory is
# writable by the server's OS user (postgres when we are root); reports go
# to asan.<pid> / ubsan.<pid> there.
san=$work/sanitizer
mkdir -m 1777 "$san"
# The shim, preloaded after the runtimes, does two things for them:
# - it makes libubsan read UBSAN_OPTIONS at process start.  The runtimes
#   read the environment from /proc/self/environ, which every PostgreSQL
#   child overwrites with its ps display (init_ps_display); libubsan reads
#   its options only at its first finding, so in a backend it saw none (a
#   report went to stderr with exit code 1, not to log_path with an
#   abort).  The shim's constructor calls a recoverable UBSan handler once
#   with a location that ubsan.supp suppresses: that initialises libubsan
#   (flags, log path, suppressions) and reports nothing.
# - it defines swift_demangle: the ASan runtime initialises itself on its
#   first malloc, here inside a constructor of one of postgres's libraries
#   (libgpg-error's bindtextdomain, p11-kit's newlocale) that holds a glibc
#   locale lock; the init looks up swift_demangle, fails, and dlerror()
#   translates its message under the same lock: postgres hangs before main
#   (llvm-project issue 49223 is the same deadlock).  A swift_demangle
#   that is found (and demangles nothing) keeps dlerror out of it.
cat >"$work/asan_shim.c" <<'SHIM'
#include <stddef.h>

/* see test/stress/40_asan.sh; the layouts are UBSan's handler ABI */
struct src_loc
{
	const char *file;
	unsigned int line;
	unsigned int column;
};
struct nonnull_arg_data
{
	struct src_loc loc;
	struct src_loc attr_loc;
	int			arg_index;
};

void		__ubsan_handle_nonnull_arg(struct nonnull_arg_data *data);
char	   *swift_demangle(const char *name, size_t len, char *out,
						   size_t *outlen, unsigned int flags);
static void init_ubsan(void) __attribute__((constructor));

static void
init_ubsan(void)
{
	static struct nonnull_arg_data d = {
		{"procq-asan-shim-init", 1, 1}, {"procq-asan-shim-init", 1, 1}, 1
	};

	__ubsan_handle_nonnull_arg(&d);
}

char *
swift_demangle(const char *name, size_t len, char *out, size_t *outlen,
			   unsigned int flags)
{
	return NULL;
}
SHIM
echo "nonnull-attribute:procq-asan-shim-init" >"$work/ubsan.supp"
gcc -shared -fPIC -O2 -o "$work/asan_shim.so" "$work/asan_shim.c"
chmod 755 "$work/asan_shim.so"
chmod 644 "$work/ubsan.supp"
libubsan=$(readlink -f "$(gcc -print-file-name=libubsan.so)")
asan_options="detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$san/asan"
asan_options+=":quarantine_size_mb=64:malloc_context_size=20"
ubsan_options="print_stacktrace=1:halt_on_error=1:abort_on_error=1:log_path=$san/ubsan"
ubsan_options+=":suppressions=$work/ubsan.supp"
mv "$pgbin/postgres" "$pgbin/postgres.bin"
# With both runtimes loaded, UBSAN_OPTIONS' log_path lands on libasan's
# report file (both export __sanitizer_set_report_path; libasan's comes
# first), so ASan reports go to $san/ubsan.<pid> and UBSan's own stay on
# stderr (seen with gcc 12).  So the server's stderr, its log, is also
# copied to $san/stderr.<pid>, which is searched for reports at the end.
cat >"$pgbin/postgres" <<EOF
#!/bin/bash
# 40_asan.sh: PostgreSQL with the sanitizer runtimes preloaded (procq.so is
# instrumented); every finding aborts the process and is written to $san.
LD_PRELOAD=$libasan:$libubsan:$work/asan_shim.so
ASAN_OPTIONS=$asan_options
UBSAN_OPTIONS=$ubsan_options
export LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
exec "\$(dirname "\$0")/postgres.bin" "\$@" 2> >(exec tee -a "$san/stderr.\$\$" >&2)
EOF
chmod 755 "$pgbin/postgres"
# pg_ctl restart starts the program that postmaster.opts names, which is
# the real binary (the postmaster writes its own path): a pg_ctl wrapper
# points it back at the postgres wrapper first.
mv "$pgbin/pg_ctl" "$pgbin/pg_ctl.bin"
cat >"$pgbin/pg_ctl" <<'EOF'
#!/bin/bash
# 40_asan.sh: before "pg_ctl restart", make postmaster.opts name the
# sanitizer wrapper (bin/postgres) instead of bin/postgres.bin.
data=${PGDATA:-}
restart=
prev=
for a in "$@"; do
    case $prev in -D | --pgdata) data=$a ;; esac
    case $a in -D?*) data=${a#-D} ;; --pgdata=*) data=${a#--pgdata=} ;; restart) restart=1 ;; esac
    prev=$a
done
if [[ -n $restart && -n $data && -f $data/postmaster.opts ]]; then
    sed -i 's|/postgres\.bin |/postgres |' "$data/postmaster.opts"
fi
exec "$(dirname "$0")/pg_ctl.bin" "$@"
EOF
chmod 755 "$pgbin/pg_ctl"
"$pgbin/postgres" -V >/dev/null || { echo "40_asan: the wrapped postgres does not run" >&2; exit 1; }
rm -f "$san"/stderr.*
[[ -z $(ls -A "$san") ]] || { echo "40_asan: postgres -V already left a report:" >&2; cat "$san"/* >&2; exit 1; }

# 4. The suite.
echo "---- scripts/run-tests.sh $* with PQ_PGBIN=$pgbin"
start=$SECONDS
rc=0
PQ_PGBIN=$pgbin scripts/run-tests.sh "$@" 2>&1 | tee "$work/run.log" || rc=$?
echo "---- the suite took $((SECONDS - start)) s (exit $rc)"

failed=0
if ((rc != 0)); then
    echo "40_asan: FAILED: the suite failed under the sanitizers"
    failed=1
fi
shopt -s nullglob
reports=()
for r in "$san"/*; do
    [[ $r == */stderr.* ]] || reports+=("$r")
done
if ((${#reports[@]})); then
    echo "40_asan: FAILED: ${#reports[@]} sanitizer report file(s):"
    for r in "${reports[@]}"; do
        echo "---- $r"
        head -n 60 "$r"
    done
    failed=1
fi
pattern='runtime error:|(Address|Leak|UndefinedBehavior)Sanitizer'
nlogs=$(find "$san" -name 'stderr.*' | wc -l)
for r in "$san"/stderr.*; do
    if grep -qE "$pattern" "$r"; then
        echo "40_asan: FAILED: sanitizer report in the server log $r:"
        grep -n -A 40 -E "$pattern" "$r" | head -n 80 || true
        failed=1
    fi
done
if grep -nE "$pattern" "$work/run.log"; then
    echo "40_asan: FAILED: sanitizer lines in the suite's output (above)"
    failed=1
fi
echo "searched $nlogs server logs and $(wc -l <"$work/run.log") lines of suite output"
((nlogs > 0)) || { echo "40_asan: FAILED: no server ran through the wrapper"; failed=1; }
if ((failed)); then
    exit 1
fi
ok=1
echo "40_asan: clean: the suite passed against the ASan+UBSan build, no sanitizer report"
