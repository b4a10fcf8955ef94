#!/usr/bin/env bash
# stress.sh: run procq's long proofs, test/stress/*.sh, in name order (make
# stress; .ci/run runs it after make test).  Each script is self-contained:
# it starts the throwaway clusters it needs (scripts/cluster.sh or the TAP
# framework), stops them also on failure, prints what it checked and exits
# non-zero on failure.  Every script runs even if an earlier one fails; the
# last line is "N passed, N failed"; exits 1 if any failed.  Expects procq to
# be built and installed (make stress does both).
#
#   scripts/stress.sh [test/stress/NAME.sh...]   only the given scripts
#   PQ_PGBIN=DIR                                 PostgreSQL 15 bin directory
#   PQ_STRESS_TIMEOUT=SECONDS                    limit per script (1800)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PQ_PGBIN=${PQ_PGBIN:-/usr/lib/postgresql/15/bin}
limit=${PQ_STRESS_TIMEOUT:-1800}
shopt -s nullglob
scripts=("$@")
((${#scripts[@]})) || scripts=(test/stress/*.sh)
passed=0
failures=()
for s in "${scripts[@]}"; do
    printf '\n==== %s\n' "$s"
    start=$SECONDS
    timeout "$limit" bash "$s"
    rc=$?
    if ((rc == 0)); then
        passed=$((passed + 1))
        echo "---- $s: passed in $((SECONDS - start)) s"
    else
        ((rc == 124)) && echo "---- $s: timed out after $limit s"
        echo "---- $s: FAILED (exit $rc) after $((SECONDS - start)) s"
        failures+=("$s")
    fi
done
printf '\n==== summary\n'
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, ${#failures[@]} failed"
((${#failures[@]} == 0))
