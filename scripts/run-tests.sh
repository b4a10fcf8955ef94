#!/usr/bin/env bash
# run-tests.sh: run procq's whole test suite: pg_regress (test/sql/*.sql),
# isolation (test/isolation/specs) and pgTAP (test/pgtap/*.sql) against one
# throwaway cluster, then the TAP tests (test/t/*.pl), each of which starts
# throwaway clusters of its own with PostgreSQL::Test::Cluster.  Every suite
# runs even if an earlier one fails; the last line is "N passed, N failed"
# (pg_regress tests, specs and test files); exits 1 if any failed.  Expects
# procq to be built and installed (make test).
#
#   scripts/run-tests.sh [TAP-TEST...]   only the given test/t/*.pl files
#   PQ_NO_TAP=1 scripts/run-tests.sh     everything but the TAP tests
#   PQ_ONLY_EXT=1 scripts/run-tests.sh [SUITE...]
#                                        only the suites of test/ext/ (all, or
#                                        the given test/ext/*.sh files)
#
# The suites of test/ext/*.sh (the clients, the command line, the docs'
# examples) run after pgTAP, on the same cluster, each with a database of
# its own where procq is installed: PGHOST, PGPORT, PGUSER (postgres) and
# PGDATABASE name it, PQ_PGBIN the PostgreSQL bin dir, PQ_CLUSTER_LOG the
# server log.  A suite passes when it exits 0; each counts as one test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
shopt -s nullglob
passed=0
failed=0
failures=()
tap_timeout=600 # seconds per TAP test file

pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); failures+=("$1"); }
header() { printf '\n==== %s\n' "$1"; }

# "kind_name" from a test file path, usable as a database name.
dbname() {
    local name=${2##*/}
    name=${name%.*}
    name="${1}_${name//[^a-zA-Z0-9_]/_}"
    echo "${name,,}" | cut -c1-63
}

# One pg_regress run through PGXS: LABEL DIFFS make-overrides...  Counts the
# tests in its output; the run counts as one failure if it failed otherwise.
run_pg_regress() {
    local label=$1 diffs=$2 log rc=0 name
    shift 2
    log=$PQ_CLUSTER_DIR/$label.log # removed with the cluster
    rm -f "$diffs"
    timeout 1200 make -s --no-print-directory installcheck PG_CONFIG="$PG_CONFIG" "$@" 2>&1 |
        tee "$log" || rc=$?
    passed=$((passed + $(grep -cE '\.\.\. ok' "$log" || true)))
    while read -r name; do
        fail "$label/$name"
    done < <(sed -nE 's/^ *(test +)?([^ ]+) +\.\.\. FAILED.*/\2/p' "$log")
    if ((rc != 0)); then
        grep -qE '\.\.\. FAILED' "$log" || fail "$label (make installcheck exited $rc)"
        if [[ -f $diffs ]]; then
            echo "---- $diffs (first 300 lines)"
            head -n 300 "$diffs"
        fi
    fi
}

# The TAP tests run as the OS user postgres when we are root (initdb and
# the server refuse root), from a copy of the tree that user can read and
# write (tmp_check/ with the clusters and logs lives in it), with a PATH of
# system directories only (root's may name directories postgres cannot
# search, which changes what execvp reports).  One prove run
# per file, so that each counts and times out on its own; a failing file's
# log is printed.
run_tap_tests() {
    local stage f name rc perl_lib as_owner=()
    header "TAP: test/t/*.pl"
    (($#)) || { echo "no TAP tests, skipped"; return; }
    perl_lib=$("$PG_CONFIG" --pgxs)
    perl_lib=${perl_lib%/src/makefiles/pgxs.mk}/src/test/perl
    stage=$(mktemp -d "${TMPDIR:-/tmp}/procq-tap.XXXXXX")
    chmod 755 "$stage"
    tar --exclude=.git --exclude=tmp_check --exclude=results -cf - . | tar -C "$stage" -xf -
    if ((EUID == 0)); then
        chown -R postgres: "$stage"
        as_owner=(runuser -u postgres --)
    fi
    for f in "$@"; do
        name=${f##*/}
        name=${name%.pl}
        echo "---- $f"
        rc=0
        (cd "$stage" && timeout "$tap_timeout" "${as_owner[@]}" env \
            PATH="$PQ_PGBIN:/usr/local/bin:/usr/bin:/bin" TESTDIR="$stage" \
            PG_REGRESS="${perl_lib%/perl}/regress/pg_regress" \
            prove -v -I "$perl_lib" -I test/perl "$f") </dev/null || rc=$?
        if ((rc == 0)); then
            pass
        else
            ((rc == 124)) && echo "---- $f: timed out after $tap_timeout s"
            echo "---- $f: FAILED (exit $rc); last lines of its logs:"
            tail -n 60 "$stage/tmp_check/log/regress_log_$name" 2>/dev/null || true
            for log in "$stage"/tmp_check/log/"${name}"_*.log; do
                [[ -f $log ]] || continue
                echo "---- $log"
                grep -E 'PANIC|FATAL|ERROR|terminated by signal' "$log" | tail -n 20 || true
            done
            fail "tap/${f##*/}"
        fi
    done
    for log in "$stage"/tmp_check/log/*.log; do
        [[ -f $log ]] || continue
        grep -H -E 'PANIC|terminated by signal (11|6|7)' "$log" &&
            echo "(server log lines above: a backend crashed during the TAP tests)"
    done
    if ((failed == 0)); then
        rm -rf -- "$stage"
    else
        echo "(the TAP tests' logs and data directories are kept in $stage/tmp_check)"
    fi
}

# Run each suite of test/ext/ (see the header) in a database of its own.
run_ext_suites() {
    local f db rc
    header "suites: test/ext/*.sh"
    (($#)) || { echo "no suites, skipped"; return; }
    for f in "$@"; do
        echo "---- $f"
        db=$(dbname ext "$f")
        rc=0
        if pq_createdb "$db" procq; then
            PGDATABASE=$db timeout 900 bash "$f" </dev/null || rc=$?
        else
            rc=1
        fi
        if ((rc == 0)); then
            pass
        else
            ((rc == 124)) && echo "---- $f: timed out after 900 s"
            echo "---- $f: FAILED (exit $rc)"
            fail "ext/${f##*/}"
        fi
    done
}

# Print the failures and the closing line; exit 1 if anything failed.
summary() {
    header "summary"
    for f in "${failures[@]}"; do echo "FAILED: $f"; done
    echo "$passed passed, $failed failed"
    ((failed == 0)) || exit 1
    exit 0
}

# Suites of test/ext/ only.
if [[ -n ${PQ_ONLY_EXT:-} ]]; then
    pq_cluster_start
    if (($#)); then run_ext_suites "$@"; else run_ext_suites test/ext/*.sh; fi
    pq_cluster_stop
    summary
fi

# TAP tests only, when named on the command line.
if (($#)); then
    run_tap_tests "$@"
    summary
fi

pq_cluster_start

header "pg_regress: test/sql/*.sql"
regress=(test/sql/*.sql)
if ((${#regress[@]})); then
    run_pg_regress regress regression.diffs ISOLATION=
else
    echo "no regression tests, skipped"
fi

header "isolation: test/isolation/specs/*.spec"
specs=(test/isolation/specs/*.spec)
if ((${#specs[@]})); then
    run_pg_regress isolation output_iso/regression.diffs REGRESS=
else
    echo "no isolation specs, skipped"
fi

header "pgTAP: test/pgtap/*.sql"
tap_files=(test/pgtap/*.sql)
((${#tap_files[@]})) || echo "no pgTAP tests, skipped"
for f in "${tap_files[@]}"; do
    db=$(dbname pgtap "$f")
    if pq_createdb "$db" pgtap procq &&
        timeout 600 prove -v --exec "$PQ_PGBIN/psql -X -q -A -t -v ON_ERROR_STOP=1 -d $db -f" "$f"; then
        pass
    else
        fail "pgtap/${f##*/}"
    fi
done
run_ext_suites test/ext/*.sh
if grep -E 'PANIC|terminated by signal' "$PQ_CLUSTER_LOG"; then
    echo "(server log lines above: a backend crashed or was killed during the tests)"
fi
pq_cluster_stop

[[ -n ${PQ_NO_TAP:-} ]] || run_tap_tests test/t/*.pl
summary
