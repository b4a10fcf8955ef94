#!/usr/bin/env bash
# cli.sh: bin/procq, the operator's command line (docs/cli.md), against the
# database of this suite (PGDATABASE, see test/ext/README.md): every
# command, its output, bad input, and each exit code (0 ok, 1 the server
# refused, 2 usage, 3 no such job or workflow, 4 cannot connect, 5 nothing
# to do, 6 local failure).  Values reach SQL as psql variables only: an id
# like "1; DROP TABLE" is a usage error, a queue name with quotes works.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="${PQ_PGBIN:+$PQ_PGBIN:}$PATH"
CLI=$PWD/bin/procq
tmp=$(mktemp -d "${TMPDIR:-/tmp}/procq-cli.XXXXXX")
nobody=procq_cli_nobody_$$
cleanup() {
    psql -XqAt -d "$PGDATABASE" -c "DROP ROLE IF EXISTS $nobody" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
tests=0
ok() { tests=$((tests + 1)); echo "ok $tests - $1"; }
not_ok() {
    tests=$((tests + 1)); failures=$((failures + 1))
    echo "not ok $tests - $1"
    echo "#   exit $rc; stdout:"; sed 's/^/#     /' "$tmp/out"
    echo "#   stderr:"; sed 's/^/#     /' "$tmp/err"
}

# run CMD...: runs bin/procq, keeps stdout, stderr and the exit code.
run() {
    rc=0
    "$CLI" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
}
# expect DESCRIPTION RC [stdout-regex [stderr-regex]]: checks the last run;
# a regex EMPTY means that nothing was printed there.
expect() {
    local what=$1 want=$2 out_re=${3:-} err_re=${4:-}
    if [[ $rc != "$want" ]]; then not_ok "$what (wanted exit $want)"; return; fi
    if ! matches "$out_re" "$tmp/out"; then not_ok "$what (stdout should match /$out_re/)"; return; fi
    if ! matches "$err_re" "$tmp/err"; then not_ok "$what (stderr should match /$err_re/)"; return; fi
    ok "$what"
}
matches() {
    [[ -z $1 ]] && return 0
    [[ $1 == EMPTY ]] && { [[ ! -s $2 ]]; return; }
    grep -Eq -- "$1" "$2"
}
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# The jobs: a workflow extract -> load (1, 2); a mail job in a queue named
# it's "odd" (3); a job that failed (4, with a two-line error); a running
# job (5); a succeeded job (6).
sql >/dev/null <<'SQL' || { echo "Bail out! setup failed"; exit 1; }
SELECT * FROM procq.defer_workflow('[
  {"key": "extract", "task": "extract"},
  {"key": "load", "task": "load", "depends_on": ["extract"]}]');
SELECT procq.defer('mail', queue => $$it's "odd"$$, args => '{"to": "x"}');
SELECT procq.defer('flaky', queue => 'batch');
SELECT procq.finish_job(id, 'failed', error => E'boom\nsecond line', attempt => attempts)
FROM procq.fetch_job(tasks => '{flaky}');
SELECT procq.defer('long', queue => 'batch');
SELECT id FROM procq.fetch_job(tasks => '{long}', worker => 'cli-worker');
SELECT procq.defer('quick', queue => 'batch');
SELECT procq.finish_job(id, 'succeeded', result => '{"n": 1}', attempt => attempts)
FROM procq.fetch_job(tasks => '{quick}');
SQL

# ---- help and usage ----------------------------------------------------
run
expect "no command: usage on stderr, exit 2" 2 '' 'Usage: procq'
run help
expect "help lists the commands and the exit codes" 0 'procq workflow|workflow ID' EMPTY
grep -q '4  cannot connect' "$tmp/out" && ok "help documents the exit codes" || not_ok "help documents the exit codes"
run --help
expect "--help" 0 'Commands:'
for c in list show retry cancel workflow stats; do
    run "$c" --help
    expect "$c --help" 0 "Usage: procq $c"
    run help "$c"
    expect "help $c" 0 "Usage: procq $c"
done
run help frob
expect "help of an unknown command: exit 2" 2 '' 'unknown command "frob"'
run frob
expect "unknown command: exit 2" 2 '' 'unknown command "frob"'

# ---- list --------------------------------------------------------------
run list
expect "list: a table, newest first" 0 '^ +id +\| +queue +\| +task +\| +status'
[[ $(awk -F'|' '$1 ~ /^ *[0-9]+ *$/ {printf "%s%d", sep, $1; sep=" "}' "$tmp/out") == "6 5 4 3 2 1" ]] &&
    ok "list: ids newest first" || not_ok "list: ids newest first"
run list --queue "it's \"odd\""
expect "list --queue with quotes in the name" 0 "it's \"odd\" \| mail" EMPTY
grep -q '(1 row)' "$tmp/out" && ok "list --queue: only that queue" || not_ok "list --queue: only that queue"
run list --status failed
expect "list --status failed: the error's first line" 0 '\| flaky +\| failed .*\| boom *$'
grep -q '(1 row)' "$tmp/out" && ok "list --status: only that status" || not_ok "list --status: only that status"
run list --task=load
expect "list --task=load" 0 '\| load +\| todo +\| 0/1 +\| +1 \| load'
run list --queue batch --status succeeded
expect "list: filters combine" 0 'quick +\| succeeded'
grep -q '(1 row)' "$tmp/out" && ok "list: combined filters, one row" || not_ok "list: combined filters, one row"
run list --limit 2
expect "list --limit 2" 0 '\(2 rows\)'
run list --queue "x'; DROP TABLE procq.jobs; --"
expect "list: a hostile queue name is only a value" 0 '\(0 rows\)'
[[ $(sql -c "SELECT count(*) FROM procq.jobs") == 6 ]] && ok "... and the jobs are still there" ||
    not_ok "... and the jobs are still there"
run list --status bogus
expect "list --status bogus: usage error" 2 '' 'status must be one of'
run list --limit 0
expect "list --limit 0: usage error" 2 '' 'limit must be an integer'
run list --limit "1; DROP TABLE procq.jobs"
expect "list --limit with SQL: usage error" 2 '' 'limit must be an integer'
run list --queue
expect "list --queue without a value: usage error" 2 '' 'needs a value'
run list extra
expect "list with a stray argument: usage error" 2 '' 'unexpected argument'

# ---- show --------------------------------------------------------------
run show 2
expect "show: the job's row" 0 '^task +\| load$'
grep -Eq '^step_key +\| load$' "$tmp/out" && ok "show: step_key" || not_ok "show: step_key"
grep -Eq '^parents:' "$tmp/out" && grep -Eq '^ +1 \| extract \| todo +\| extract' "$tmp/out" &&
    ok "show: parents with their status" || not_ok "show: parents with their status"
run show 1
expect "show 1: its child with its status" 0 '^ +2 \| load +\| todo +\| load +\| success'
run show 4
expect "show 4: a failed job" 0 '^status +\| failed$'
if [[ $(sql -c "SELECT to_regprocedure('procq.job_history(bigint)') IS NOT NULL") == t ]]; then
    grep -Eq '^attempts \(procq.job_history\):' "$tmp/out" && grep -Eq '\| failed +\| failed +\| +1 \|' "$tmp/out" &&
        ok "show: attempts from procq.job_history" || not_ok "show: attempts from procq.job_history"
else
    grep -Eq '^attempts \(this procq keeps no history' "$tmp/out" && grep -Eq '^ 1/1 +\| failed' "$tmp/out" &&
        ok "show: attempts from the row (no procq.job_history)" ||
        not_ok "show: attempts from the row (no procq.job_history)"
fi
run show 5
expect "show 5: the worker of a running job" 0 '^worker +\| cli-worker$'
run show 999
expect "show of a job that does not exist: exit 3" 3 EMPTY 'job 999 does not exist \(SQLSTATE P0002\)'
run show "1; DROP TABLE procq.jobs"
expect "show with SQL for an id: usage error" 2 EMPTY 'job id must be a positive integer'
run show 0
expect "show 0: usage error" 2 '' 'positive integer'
run show 9223372036854775808
expect "show of an id over bigint: usage error" 2 '' 'positive integer'
run show 9223372036854775807
expect "show of the largest bigint: no such job" 3 '' 'does not exist'
run show
expect "show without an id: usage error" 2 '' 'one job id'
run show 1 2
expect "show with two ids: usage error" 2 '' 'one job id'

# ---- retry -------------------------------------------------------------
run retry 4
expect "retry a failed job" 0 '^job 4 retried: todo$' EMPTY
[[ $(sql -c "SELECT status || ' ' || attempts FROM procq.jobs WHERE id = 4") == "todo 0" ]] &&
    ok "retry: the job is todo with fresh attempts" || not_ok "retry: the job is todo with fresh attempts"
run retry 4
expect "retry of a todo job: the server refuses, exit 1" 1 EMPTY 'job 4 cannot be retried \(SQLSTATE 55000\)'
grep -q 'DETAIL: Its status is todo' "$tmp/err" && ok "retry: the server's detail is printed" ||
    not_ok "retry: the server's detail is printed"
sql -c "SELECT procq.cancel_job(4)" >/dev/null
run retry 4 --at '2031-02-03 04:05:06+00'
expect "retry --at" 0 '^job 4 retried: todo, scheduled at 2031-02-03 04:05:06 UTC$'
[[ $(sql -c "SELECT scheduled_at = '2031-02-03 04:05:06+00' FROM procq.jobs WHERE id = 4") == t ]] &&
    ok "retry --at: scheduled_at set" || not_ok "retry --at: scheduled_at set"
sql -c "SELECT procq.cancel_job(4)" >/dev/null
run retry 4 --at "tomorrow'); DROP TABLE procq.jobs; --"
expect "retry --at with a bad time: the server refuses (22007)" 1 '' 'SQLSTATE 22007'
[[ $(sql -c "SELECT status FROM procq.jobs WHERE id = 4") == cancelled ]] &&
    ok "... and nothing changed" || not_ok "... and nothing changed"
run retry 999
expect "retry of a job that does not exist: exit 3" 3 '' 'SQLSTATE P0002'
run retry x
expect "retry x: usage error" 2 '' 'positive integer'
run retry 4 --at
expect "retry --at without a value: usage error" 2 '' 'needs a value'
run retry 4 --frob
expect "retry with an unknown option: usage error" 2 '' 'unknown option'

# ---- cancel ------------------------------------------------------------
run cancel 3
expect "cancel a todo job" 0 '^job 3 cancelled$'
run cancel 3
expect "cancel it again: nothing to do, exit 5" 5 EMPTY 'job 3 is cancelled: nothing to cancel'
run cancel 5
expect "cancel a running job without --abort: exit 5" 5 '' 'job 5 is doing: nothing cancelled \(--abort stops it\)'
run cancel 5 --abort
expect "cancel --abort a running job" 0 '^job 5 cancelled$'
[[ $(sql -c "SELECT status || ': ' || error FROM procq.jobs WHERE id = 5") == "cancelled: aborted by procq.cancel_job" ]] &&
    ok "cancel --abort: the job ended cancelled, aborted" || not_ok "cancel --abort: the job ended cancelled, aborted"
run cancel 999
expect "cancel of a job that does not exist: exit 3" 3 '' 'SQLSTATE P0002'
run cancel -1
expect "cancel -1: usage error" 2 '' 'unknown option "-1"'
run cancel 1.5
expect "cancel 1.5: usage error" 2 '' 'positive integer'
run cancel
expect "cancel without an id: usage error" 2 '' 'needs a job id'

# ---- workflow ----------------------------------------------------------
run workflow 1
expect "workflow: its row" 0 '^state +\| running$'
grep -Eq '^ +2 \| load +\| load +\| todo +\| success +\| 1 ' "$tmp/out" &&
    ok "workflow: its jobs with their parents" || not_ok "workflow: its jobs with their parents"
run workflow 1 --dot
expect "workflow --dot: the graph" 0 '^digraph "workflow 1" \{$'
grep -q '1 -> 2' "$tmp/out" && ok "workflow --dot: the edge" || not_ok "workflow --dot: the edge"
run workflow 1 --png "$tmp/w.png"
expect "workflow --png" 0 "^workflow 1 drawn to $tmp/w.png\$"
[[ $(head -c 8 "$tmp/w.png" | od -An -c | tr -d ' ') == '211PNG\r\n032\n' ]] &&
    ok "workflow --png: a PNG file" || not_ok "workflow --png: a PNG file"
run workflow 1 --png "$tmp/no/such/dir/w.png"
expect "workflow --png into a missing directory: exit 6" 6 '' 'could not write'
# without Graphviz: a PATH of the tools bin/procq needs, but no dot
mkdir -p "$tmp/nodot"
for t in bash psql mktemp sed head tr rm cat; do ln -s "$(command -v "$t")" "$tmp/nodot/$t"; done
PATH=$tmp/nodot run workflow 1 --png "$tmp/w2.png"
expect "workflow --png without Graphviz: exit 6" 6 '' 'Graphviz dot is not installed'
[[ ! -e $tmp/w2.png ]] && ok "... and no file" || not_ok "... and no file"
run workflow 999
expect "workflow that does not exist: exit 3" 3 EMPTY 'workflow 999 does not exist'
run workflow 999 --dot
expect "workflow --dot that does not exist: exit 3" 3 EMPTY 'SQLSTATE P0002'
run workflow 1 --dot --png x.png
expect "workflow --dot --png: usage error" 2 '' 'exclude each other'
run workflow "1 OR true"
expect "workflow with SQL for an id: usage error" 2 '' 'positive integer'

# ---- stats -------------------------------------------------------------
run stats
expect "stats: one row per queue" 0 '^ +queue +\| +todo +\| +doing +\| +succeeded +\| +failed +\| +cancelled'
grep -Eq "^ it's \"odd\" +\| +0 \| +0 \| +0 \| +0 \| +1( |$)" "$tmp/out" &&
    grep -Eq '^ batch +\| +0 \| +0 \| +1 \| +0 \| +2( |$)' "$tmp/out" &&
    ok "stats: counts by status per queue" || not_ok "stats: counts by status per queue"
run stats now
expect "stats with an argument: usage error" 2 '' 'no arguments'

# ---- connections and privileges ----------------------------------------
run -h "$tmp/no-such-socket-dir" list
expect "no server there: cannot connect, exit 4" 4 EMPTY '^procq: cannot connect: '
run --dbname "procq_cli_no_such_db" list
expect "no such database: exit 4" 4 '' 'cannot connect: .*does not exist'
run -d "$PGDATABASE" -U postgres list --limit 1
expect "-d and -U are passed to psql" 0 '\(1 row\)'
run -p
expect "-p without a value: usage error" 2 '' 'needs a value'
sql -c "CREATE ROLE $nobody LOGIN" >/dev/null
for c in "list" "show 1" "retry 4" "cancel 1" "workflow 1" "workflow 1 --dot" "stats"; do
    # shellcheck disable=SC2086
    run -U "$nobody" $c
    expect "a role without access: $c is refused, exit 1" 1 EMPTY 'permission denied for .* \(SQLSTATE 42501\)'
done
sql -c "GRANT USAGE ON SCHEMA procq TO $nobody" >/dev/null
run -U "$nobody" show 1
expect "a role with USAGE only: show refused" 1 '' 'permission denied for function get_job \(SQLSTATE 42501\)'
sql -c "GRANT EXECUTE ON FUNCTION procq.get_job, procq.parents TO $nobody" >/dev/null
run -U "$nobody" show 1
expect "a role that may not act on the job: show refused" 1 '' 'permission denied for job 1 \(SQLSTATE 42501\)'

echo "1..$tests"
((failures == 0)) || { echo "# $failures of $tests failed"; exit 1; }
