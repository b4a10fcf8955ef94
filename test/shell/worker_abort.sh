#!/usr/bin/env bash
# worker_abort.sh: stopping running jobs.  procq.cancel_job(id, abort => true)
# stops a running SQL job (pg_sleep(60)) and a running shell job (sleep 60)
# well before they would end: both end cancelled with 'aborted by
# procq.cancel_job', the shell program is gone, and the same worker goes on to
# the next job; abort => false on a doing job returns false and changes
# nothing.  A fast shutdown with a shell job running sleep 300 completes
# within 30 s (the server never waits on a job), and after the restart the
# job is put back and runs again.  One worker, so "the worker" is unambiguous.
# Own throwaway cluster.
set -euo pipefail
# shellcheck source=test/shell/lib/worker_crash_lib.sh
source "$(dirname "$0")/lib/worker_crash_lib.sh"

pq_start 1
n=$(nonce)
register sql_sleep sql "SELECT pg_sleep(60)"
register sql_next sql "SELECT 'next'"
register shell_sleep shell "sleep 60.$n"
register shell_next shell "echo next"
worker_pid=$(sql "SELECT pid FROM procq.worker_status")

# abort_and_check KIND: abort a running KIND_sleep job with a KIND_next job
# queued behind it.
abort_and_check() {
    local kind=$1 job next
    job=$(defer "${kind}_sleep")
    next=$(defer "${kind}_next")
    wait_for "(SELECT job_id = $job AND state = 'running $kind' FROM procq.worker_status)" \
        "the worker did not start $kind job $job" 60 "SELECT * FROM procq.worker_status"
    if [[ $kind == shell ]]; then
        # Truly doing (committed as such): abort => false must leave it alone.
        [[ $(sql "SELECT procq.cancel_job($job, abort => false)") == f ]] ||
            fail "cancel_job(abort => false) on a doing shell job did not return false"
        [[ $(sql "SELECT status FROM procq.jobs WHERE id = $job") == doing &&
            $(sql "SELECT job_id FROM procq.worker_status") == "$job" ]] ||
            fail "cancel_job(abort => false) changed the doing job"
        pgrep -f -- "60\.$n" >/dev/null || fail "cancel_job(abort => false) stopped the program"
        ok "cancel_job(abort => false) on a doing job returns false and changes nothing"
    fi
    [[ $(sql "SELECT procq.cancel_job($job, abort => true)") == t ]] ||
        fail "cancel_job(abort => true) on running $kind job $job did not return true"
    wait_for "(SELECT status <> 'doing' AND status <> 'todo' FROM procq.jobs WHERE id = $job)" \
        "aborted $kind job $job did not end within 30 s" 30 \
        "SELECT id, status, worker, error FROM procq.jobs WHERE id = $job"
    check_job "$job" "an aborted running $kind job ends cancelled, 'aborted by procq.cancel_job'" \
        "status = 'cancelled' AND error = 'aborted by procq.cancel_job'"
    if [[ $kind == shell ]]; then
        wait_gone "60\.$n" 10 || fail "the aborted shell program is still running"
        ok "the aborted shell program is gone"
    fi
    wait_for "(SELECT status <> 'todo' FROM procq.jobs WHERE id = $next)" \
        "the worker did not go on to job $next after the abort"
    check_job "$next" "the same worker goes on to the next $kind job" \
        "status = 'succeeded' AND result = '\"next\"'
         AND worker = (SELECT worker FROM procq.jobs WHERE id = $job)
         AND worker = 'procq worker 1 pid $worker_pid'"
}
abort_and_check sql
abort_and_check shell
[[ $(sql "SELECT pid FROM procq.worker_status") == "$worker_pid" ]] ||
    fail "the worker was replaced during the aborts"
ok "the worker process itself survived both aborts"

# Fast shutdown while a shell job runs sleep 300.  The program sleeps the
# first time it runs for a job, and says so at once the second time.
n=$(register_slow 300)
job=$(defer slow '' 2)
wait_for "(SELECT job_id = $job AND state = 'running shell' FROM procq.worker_status)" \
    "the worker did not start shell job $job"
for _ in $(seq 100); do pgrep -f -- "300\.$n" >/dev/null && break; sleep 0.1; done
pgrep -f -- "300\.$n" >/dev/null || fail "sleep 300 did not start"
start=$SECONDS
pq_cluster_restart fast
((SECONDS - start <= 30)) ||
    fail "a fast restart with a running shell job took $((SECONDS - start)) s (over 30 s)"
ok "fast shutdown with a running sleep 300 done (and restarted) in $((SECONDS - start)) s"
wait_gone "300\.$n" 10 || fail "sleep 300 outlived the shutdown: $(pgrep -af -- "300\.$n")"
ok "the shell program did not outlive the shutdown"
wait_for "(SELECT status NOT IN ('todo', 'doing') FROM procq.jobs WHERE id = $job)" \
    "the job running at shutdown was not put back and run again" 60 \
    "SELECT id, status, attempts, worker, error FROM procq.jobs WHERE id = $job"
check_job "$job" "after the restart the job was put back and ran again (attempts 2)" \
    "status = 'succeeded' AND attempts = 2 AND result = '\"second run\"'"
