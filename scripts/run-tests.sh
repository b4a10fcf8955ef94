#!/usr/bin/env bash
# run-tests.sh: run procq's whole test suite against one throwaway cluster:
# pg_regress (sql/*.sql), isolation (test/isolation/specs), pgTAP
# (test/pgtap/*.sql) and shell tests (test/shell/*.sh).  Every suite runs even
# if an earlier one fails; the last line is "N passed, N failed" (test files);
# exits 1 if any failed.  Expects procq to be built and installed (make test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
shopt -s nullglob
passed=0
failed=0
failures=()
shell_timeout=600 # seconds per shell test

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

pq_cluster_start

header "pg_regress: sql/*.sql"
regress=()
for f in sql/*.sql; do [[ $f == sql/procq--* ]] || regress+=("$f"); done
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

header "shell: test/shell/*.sh"
shell_files=(test/shell/*.sh)
((${#shell_files[@]})) || echo "no shell tests, skipped"
for f in "${shell_files[@]}"; do
    if [[ ! -x $f ]]; then
        echo "$f is not executable, skipped"
        continue
    fi
    db=$(dbname shell "$f")
    echo "---- $f (PQ_TEST_DB=$db)"
    rc=0
    if pq_createdb "$db" procq; then
        PQ_TEST_DB=$db timeout "$shell_timeout" "$f" </dev/null || rc=$?
    else
        rc=$?
    fi
    if ((rc == 0)); then
        echo "---- $f: ok"
        pass
    else
        ((rc == 124)) && echo "---- $f: timed out after $shell_timeout s"
        echo "---- $f: FAILED (exit $rc)"
        fail "shell/${f##*/}"
    fi
done

header "summary"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
if grep -E 'PANIC|terminated by signal' "$PQ_CLUSTER_LOG"; then
    echo "(server log lines above: a backend crashed or was killed during the tests)"
fi
echo "$passed passed, $failed failed"
((failed == 0)) || exit 1
