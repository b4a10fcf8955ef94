#!/usr/bin/env bash
# worker_crash.sh: procq's background workers survive crashes without losing
# or repeating work.  (a) A worker killed with SIGKILL in the middle of a
# batch of 100 SQL jobs (the postmaster crash-restarts) and (b) an immediate
# server stop under load: afterwards every job has succeeded and its effect,
# a row keyed by job id, exists exactly once (a second run would fail the job
# with a unique violation), and no job is stuck in doing.  (c) Shell jobs in
# flight during a crash restart: one with max_attempts 2 goes back to todo and
# runs again (attempts 2), one with max_attempts 1 fails with 'its procq worker
# died while running it'; their programs do not outlive the crashed workers.
# Own throwaway cluster.
set -euo pipefail
# shellcheck source=test/shell/lib/worker_crash_lib.sh
source "$(dirname "$0")/lib/worker_crash_lib.sh"

pq_start 2 "procq.batch_size = 100"
sql "CREATE TABLE effects (job_id bigint PRIMARY KEY, phase text NOT NULL);
     CREATE FUNCTION effect(job bigint, phase text) RETURNS bigint LANGUAGE sql AS
       'INSERT INTO public.effects VALUES (job, phase); SELECT pg_sleep(0.01); SELECT job'"
register effect sql "SELECT public.effect(\$2, \$1->>'phase')"

# defer_load PHASE: defer 300 effect jobs of PHASE in one transaction, wait
# until a worker runs one; print the pid of that worker.
defer_load() {
    local pid
    sql "SELECT count(procq.defer('effect', jsonb_build_object('phase', '$1', 'n', g)))
           FROM generate_series(1, 300) g" >/dev/null
    for _ in $(seq 600); do
        pid=$(sql "SELECT pid FROM procq.worker_status WHERE state = 'running sql' LIMIT 1")
        [[ -n $pid ]] && { echo "$pid"; return; }
        sleep 0.05
    done
    fail "no worker started running the phase $1 jobs within 30 s"
}

# check_load PHASE: every job of PHASE succeeded, with its effect exactly once.
check_load() {
    local phase="args->>'phase' = '$1'" v
    wait_for "(SELECT count(*) FROM procq.jobs WHERE $phase AND status <> 'succeeded') = 0" \
        "phase $1: not every job succeeded after the restart" 60 \
        "SELECT status, count(*), min(error) FROM procq.jobs WHERE $phase GROUP BY 1"
    v=$(sql "SELECT format('%s jobs, %s effects, %s jobs without effect, %s failed, %s with 23505, %s doing',
               (SELECT count(*) FROM procq.jobs WHERE $phase),
               (SELECT count(*) FROM effects WHERE phase = '$1'),
               (SELECT count(*) FROM procq.jobs j WHERE $phase
                  AND NOT EXISTS (SELECT FROM effects e WHERE e.job_id = j.id AND e.phase = '$1')),
               (SELECT count(*) FROM procq.jobs WHERE $phase AND status = 'failed'),
               (SELECT count(*) FROM procq.jobs WHERE $phase AND error LIKE '%23505%'),
               (SELECT count(*) FROM procq.jobs WHERE status = 'doing'))")
    [[ $v == "300 jobs, 300 effects, 0 jobs without effect, 0 failed, 0 with 23505, 0 doing" ]] ||
        fail "phase $1: $v"
    ok "phase $1: all 300 jobs succeeded, each effect exactly once, none failed or doing"
}

# (a) SIGKILL one worker while the batches run.
pid=$(defer_load a)
before=$(sql "SELECT count(*) FROM procq.jobs WHERE args->>'phase' = 'a' AND status = 'succeeded'")
off=$(log_size)
kill -9 "$pid"
((before < 300)) || fail "phase a: all jobs were done before the kill"
wait_crash "$pid" "$off"
ok "phase a: worker $pid killed with $before of 300 jobs committed; the server crash-restarted"
check_load a

# (b) Immediate stop (a crash: WAL recovery at start) under load.
defer_load b >/dev/null
before=$(sql "SELECT count(*) FROM procq.jobs WHERE args->>'phase' = 'b' AND status = 'succeeded'")
pq_cluster_restart immediate
((before < 300)) || fail "phase b: all jobs were done before the stop"
ok "phase b: immediate stop with $before of 300 jobs committed, restarted"
check_load b

# (c) Shell jobs in flight during a crash restart.  The program sleeps 30 s
# the first time it runs for a job, and says so at once the second time.
n=$(register_slow 30)
again=$(defer slow '' 2)
once=$(defer slow '' 1)
wait_for "(SELECT count(*) FROM procq.jobs WHERE id IN ($again, $once) AND status = 'doing') = 2
          AND (SELECT count(*) FROM procq.worker_status WHERE state = 'running shell') = 2" \
    "the two shell jobs did not both start" 60 "SELECT * FROM procq.worker_status"
for _ in $(seq 100); do
    [[ $(pgrep -fc -- "30\.$n") == 2 ]] && break
    sleep 0.1
done
[[ $(pgrep -fc -- "30\.$n") == 2 ]] || fail "the two sleep 30 programs are not running: $(pgrep -af -- "30\.$n")"
pid=$(sql "SELECT pid FROM procq.worker_status WHERE job_id = $again")
off=$(log_size)
kill -9 "$pid"
wait_gone "30\.$n" 15 ||
    fail "a sleep 30 of a crashed worker is still running 15 s later: $(pgrep -af -- "30\.$n")"
ok "no sleep 30 survives the crashed workers (SIGKILLed and SIGQUIT ones)"
wait_crash "$pid" "$off"
wait_for "(SELECT count(*) FROM procq.jobs WHERE id IN ($again, $once) AND status IN ('todo', 'doing')) = 0" \
    "the shell jobs of the crashed workers were not put back and finished" 60 \
    "SELECT id, status, attempts, worker, error FROM procq.jobs WHERE id IN ($again, $once)"
check_job "$again" "a shell job with attempts left ran again after the crash (attempts 2)" \
    "status = 'succeeded' AND attempts = 2 AND result = '\"second run\"'"
check_job "$once" "a shell job out of attempts failed: its procq worker died" \
    "status = 'failed' AND attempts = 1 AND error = 'its procq worker died while running it'"
