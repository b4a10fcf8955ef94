#!/usr/bin/env bash
# 50_valgrind.sh: procq's background workers under Valgrind memcheck over a
# bounded workload, clean.
#
# A private copy of the PostgreSQL 15 installation of PQ_PGBIN (with the
# procq.so installed there) gets a postgres wrapper that runs the server
# under valgrind (initdb's --boot/--single runs and -V/-C stay native).
# Every process the postmaster forks (the procq launcher and workers, the
# backends of this script) is then under memcheck; the programs shell jobs
# exec are not (--trace-children=no).  The workload, with 2 workers:
#   - 150 SQL jobs in 30 chains of 5 (each depends on the previous one),
#     each inserting its effect;
#   - 100 shell jobs (echo, some printing JSON), each depending on a SQL job;
#   - 20 failing SQL jobs (1/0, 2 attempts, retry_delay 0) each with 2
#     children, which get cancelled; 10 failing shell jobs (exit 3);
#   - 20 jobs under one lock; a shell job that sleeps, aborted with
#     cancel_job(abort => true) while it runs.
# It waits (bounded) until every job is final, checks the outcome, stops the
# server, and reads the valgrind logs.  Clean means: no error whose stack
# goes through procq's code (procq.so's functions and source files); other
# errors (in PostgreSQL itself, not suppressed by
# test/stress/valgrind/procq.supp) are printed and fail too.
#
#   PQ_PGBIN=DIR     PostgreSQL 15 bin directory whose installation is copied
#   PQ_VG_KEEP=1     keep the temp dir (kept anyway on failure)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
command -v valgrind >/dev/null || { echo "50_valgrind: valgrind is missing (scripts/deps.sh stress)" >&2; exit 1; }
PQ_PGBIN=${PQ_PGBIN:-/usr/lib/postgresql/15/bin}
PQ_PGBIN=$(cd "$PQ_PGBIN" && pwd)
supp=$root/test/stress/valgrind/procq.supp

work=$(mktemp -d "${TMPDIR:-/tmp}/procq-valgrind.XXXXXX")
chmod 755 "$work"
ok=0

# The copy: PREFIX/usr/lib/postgresql/15 and PREFIX/usr/share/postgresql/15
# (PREFIX is empty for the system installation, /opt/pgNAME for a copy).
src_prefix=${PQ_PGBIN%/usr/lib/postgresql/15/bin}
[[ $src_prefix != "$PQ_PGBIN" ]] || { echo "50_valgrind: $PQ_PGBIN is not .../usr/lib/postgresql/15/bin" >&2; exit 1; }
[[ -f $src_prefix/usr/lib/postgresql/15/lib/procq.so ]] || { echo "50_valgrind: procq is not installed in $src_prefix" >&2; exit 1; }
prefix=$work/pg
mkdir -p "$prefix/usr/lib/postgresql" "$prefix/usr/share/postgresql"
cp -a "$src_prefix/usr/lib/postgresql/15" "$prefix/usr/lib/postgresql/"
cp -a "$src_prefix/usr/share/postgresql/15" "$prefix/usr/share/postgresql/"
pgbin=$prefix/usr/lib/postgresql/15/bin
vg=$work/valgrind
mkdir -m 1777 "$vg"
mv "$pgbin/postgres" "$pgbin/postgres.bin"
cat >"$pgbin/postgres" <<EOF
#!/bin/sh
# 50_valgrind.sh: the server under valgrind memcheck; logs in $vg.
real="\$(dirname "\$0")/postgres.bin"
case "\$1" in
--boot | --single | --check | --describe-config | -V | --version | -C) exec "\$real" "\$@" ;;
esac
exec valgrind --tool=memcheck --trace-children=no --leak-check=no \\
    --num-callers=30 --error-limit=no \\
    --suppressions=$supp --gen-suppressions=all \\
    --log-file=$vg/%p.log "\$real" "\$@"
EOF
chmod 755 "$pgbin/postgres"

export PQ_PGBIN=$pgbin
# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh
finish() {
    pq_cluster_stop
    if ((ok)) && [[ -z ${PQ_VG_KEEP:-} ]]; then
        rm -rf -- "$work"
    else
        echo "50_valgrind: kept $work (valgrind logs in $vg)"
    fi
}
pq_cluster_start "shared_preload_libraries = 'procq'" "procq.workers = 2" \
    "procq.enable_shell = on" "procq.retry_delay = 0" "procq.poll_interval = 200"
trap finish EXIT
echo "---- server up under valgrind ($(valgrind --version))"

q() { pq_psql -q -At -d postgres "$@"; }
q -c "CREATE EXTENSION procq" -c "CREATE TABLE effects (job bigint PRIMARY KEY, n int)"
q <<'SQL'
SELECT procq.register_handler('sq', 'sql', 'INSERT INTO effects VALUES ($2, ($1->>''n'')::int)');
SELECT procq.register_handler('bad', 'sql', 'SELECT 1/0');
SELECT procq.register_handler('sh', 'shell', 'echo hello');
SELECT procq.register_handler('shjson', 'shell', $$/bin/sh -c 'echo "{\"ok\": true, \"n\": 1}"'$$);
SELECT procq.register_handler('shbad', 'shell', $$/bin/sh -c 'echo oops >&2; exit 3'$$);
SELECT procq.register_handler('nap', 'shell', 'sleep 600');
SQL
start=$SECONDS
q <<'SQL'
DO $$
DECLARE
    prev bigint;
    id bigint;
    f bigint;
BEGIN
    FOR c IN 1..30 LOOP
        prev := NULL;
        FOR i IN 1..5 LOOP
            id := procq.defer('sq', jsonb_build_object('n', c * 10 + i),
                              depends_on => CASE WHEN prev IS NULL THEN NULL ELSE ARRAY[prev] END);
            IF i % 2 = 0 THEN
                PERFORM procq.defer(CASE WHEN c % 3 = 0 THEN 'shjson' ELSE 'sh' END,
                                    depends_on => ARRAY[id]);
                PERFORM procq.defer('sh', depends_on => ARRAY[id]);
            END IF;
            prev := id;
        END LOOP;
        PERFORM procq.defer('sh', depends_on => ARRAY[prev]);
    END LOOP;
    FOR k IN 1..20 LOOP
        f := procq.defer('bad', max_attempts => 2);
        PERFORM procq.defer('sq', jsonb_build_object('n', -k), depends_on => ARRAY[f]);
        PERFORM procq.defer('sh', depends_on => ARRAY[f]);
        PERFORM procq.defer('sq', jsonb_build_object('n', 1000 + k), lock => 'the lock');
    END LOOP;
    FOR k IN 1..10 LOOP
        PERFORM procq.defer('shbad');
    END LOOP;
END
$$;
SQL
nap=$(q -c "SELECT procq.defer('nap')")
echo "deferred $(q -c 'SELECT count(*) FROM procq.jobs') jobs"

# Bounded waits, each with what it waited for.
wait_until() {
    local cond=$1 what=$2 limit=$3 t0=$SECONDS
    until [[ $(q -c "SELECT ($cond)") == t ]]; do
        if ((SECONDS - t0 > limit)); then
            echo "50_valgrind: FAILED: $what (not within $limit s)"
            q -c "SELECT status, count(*) FROM procq.jobs GROUP BY 1 ORDER BY 1"
            exit 1
        fi
        sleep 1
    done
}
wait_until "SELECT status = 'doing' FROM procq.jobs WHERE id = $nap" "the nap job did not start" 300
q -c "SELECT procq.cancel_job($nap, abort => true)" >/dev/null
wait_until "NOT EXISTS (SELECT FROM procq.jobs WHERE status IN ('todo', 'doing'))" \
    "the workers did not finish every job" 400
echo "all jobs final after $((SECONDS - start)) s:"
q -c "SELECT task || ' ' || status || ' ' || count(*) FROM procq.jobs GROUP BY task, status ORDER BY 1"

# The outcome the workload implies.
check() {
    local got
    got=$(q -c "$1")
    [[ $got == "$2" ]] || { echo "50_valgrind: FAILED: $3: got $got, expected $2"; exit 1; }
}
check "SELECT count(*) FROM procq.jobs WHERE task = 'sq' AND status = 'succeeded'" 170 "SQL jobs succeeded"
check "SELECT count(*) FROM effects" 170 "SQL effects"
check "SELECT count(*) FROM procq.jobs WHERE task IN ('sh', 'shjson') AND status = 'succeeded'" 150 "shell jobs succeeded"
check "SELECT count(*) FROM procq.jobs WHERE task IN ('bad', 'shbad') AND status = 'failed'" 30 "failing jobs failed"
check "SELECT count(*) FROM procq.jobs WHERE status = 'cancelled' AND id <> $nap" 40 "children of failed jobs cancelled"
check "SELECT status <> 'succeeded' FROM procq.jobs WHERE id = $nap" t "the aborted job did not succeed"
check "SELECT attempts FROM procq.jobs WHERE task = 'bad' LIMIT 1" 2 "attempts of a failing SQL job"
pq_cluster_stop
echo "---- server stopped; $(find "$vg" -name '*.log' | wc -l) valgrind logs"

# Valgrind's logs: an error is a block from its message to the blank line,
# with --gen-suppressions's {...} after it.  procq's frames: its exported
# functions (pq_*, procq_*) or its source files (procq.so has debug info,
# the server has none).  Every unsuppressed error fails; each is labelled
# procq's or PostgreSQL's by the first frame of its stack outside libc.
srcs=$(cd src && ls ./*.c | sed 's|^\./||; s/\./\\./' | paste -sd '|')
procq_frame="(by|at) 0x[0-9A-F]+: (pq_|procq_)|\\(($srcs):[0-9]+\\)"
procq_errors=0
other_errors=0
for log in "$vg"/*.log; do
    grep -q "ERROR SUMMARY: [1-9]" "$log" || continue
    # one error per record, separated by lines with only the pid prefix
    while IFS= read -r -d '' rec; do
        [[ $rec == *"   at 0x"* ]] || continue
        # whose code: the first frame of the error's stack that is not in
        # libc or valgrind's preload (a stack through procq's worker loop
        # that faults inside PostgreSQL is PostgreSQL's)
        owner=other
        while IFS= read -r line; do
            [[ $line == *"Address 0x"* || $line == *"Uninitialised value was created"* ]] && break
            [[ $line =~ (at|by)\ 0x ]] || continue
            if grep -qE "$procq_frame" <<<"$line"; then owner=procq; break; fi
            if [[ $line == *"postgres.bin)"* ]]; then break; fi
        done <<<"$rec"
        if [[ $owner == procq ]]; then
            procq_errors=$((procq_errors + 1))
            echo "---- valgrind error in procq code ($log):"
        else
            other_errors=$((other_errors + 1))
            echo "---- valgrind error outside procq code ($log):"
        fi
        head -n 40 <<<"$rec"
    done < <(awk '/^==[0-9]+== ?$/ { printf "%c", 0; next } /^==[0-9]+== ERROR SUMMARY/ { next } { print }' "$log")
done
echo "valgrind: $procq_errors error(s) in procq code, $other_errors elsewhere"
if ((procq_errors + other_errors)); then
    echo "50_valgrind: FAILED"
    exit 1
fi
# Every process of the server ran under valgrind: at least the postmaster,
# the launcher, two workers and a backend logged.
nlogs=$(find "$vg" -name '*.log' | wc -l)
((nlogs >= 5)) || { echo "50_valgrind: FAILED: only $nlogs valgrind logs"; exit 1; }
ok=1
echo "50_valgrind: clean: $nlogs processes under memcheck, workload done in $((SECONDS - start)) s"
