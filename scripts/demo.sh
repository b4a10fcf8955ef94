#!/usr/bin/env bash
# demo.sh: procq's background workers run a small data pipeline on a
# throwaway cluster.
#
#   extract (shell) -> transform 1, 2, 3 (SQL) -> load (SQL)
#   validate (shell, fails) -> publish -> notify (both end cancelled)
#   load, validate -> alert (run_after 'failure': runs, validate failed)
#   load -> alert_load (run_after 'failure': cancelled, load succeeded)
#   load, notify, alert, alert_load -> cleanup (run_after 'completion')
#
# It registers the handlers and defers the workflow (scripts/demo/*.sql),
# waits until every job has ended, prints the timeline, checks that each
# job started only when its run_after allowed it, and draws the workflow
# with Graphviz from procq.workflow_dot() into $PROCQ_DEMO_OUT (default
# /tmp/procq-demo), which outlives the cluster.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh

out=${PROCQ_DEMO_OUT:-/tmp/procq-demo}
time_limit=30 # seconds for the workers to run the workflow

q() { pq_psql -A -t -q -c "$1"; }

echo "== starting a cluster with 3 procq workers"
pq_cluster_start "shared_preload_libraries = 'procq'" "procq.workers = 3" \
    "procq.enable_shell = on" "procq.poll_interval = 200ms"

echo "== registering handlers (scripts/demo/setup.sql) and deferring the workflow"
pq_psql -q -f scripts/demo/setup.sql >/dev/null
q "SELECT format('%-9s %-5s %s', task, kind, CASE WHEN length(c) > 64 THEN left(c, 61) || '...' ELSE c END)
     FROM procq.handlers, regexp_replace(command, '\s+', ' ', 'g') AS c ORDER BY registered_at"
echo
pq_psql -q -P footer=off -f scripts/demo/workflow.sql

# The workers are woken when a job becomes ready; wait until none is left.
deadline=$((SECONDS + time_limit))
while [[ $(q "SELECT count(*) FROM procq.jobs WHERE status IN ('todo', 'doing')") != 0 ]]; do
    if ((SECONDS >= deadline)); then
        echo "demo: FAILED: jobs still todo or doing after $time_limit s:" >&2
        pq_psql -q -c "SELECT id, task, status, worker FROM procq.jobs
                        WHERE status IN ('todo', 'doing') ORDER BY id" \
                   -c "SELECT * FROM procq.worker_status" >&2 || true
        echo "---- last lines of the server log:" >&2
        tail -n 20 "$PQ_CLUSTER_LOG" >&2
        exit 1
    fi
    sleep 0.2
done

echo "== timeline (seconds since the workflow was deferred)"
pq_psql -q -P footer=off -f scripts/demo/timeline.sql

problems=$(pq_psql -A -t -q -f scripts/demo/checks.sql)
if [[ -n $problems ]]; then
    echo "$problems" >&2
    echo "order check: FAILED" >&2
    exit 1
fi
echo "order check: OK (each 'success' job started after its parents succeeded, each 'completion' job after"
echo "  they all ended, each 'failure' job after they all ended and one failed; validate failed, publish,"
echo "  notify and alert_load were cancelled, alert and cleanup ran)"
echo
echo "== what the alert and the clean-up saw of their parents (procq.parents)"
pq_psql -q -P footer=off -c "SELECT job_id, channel, failed FROM demo.alerts" \
    -c "SELECT job_id, dir, parents FROM demo.cleanups"

echo
echo "== picture"
mkdir -p "$out"
# procq.workflow_dot draws one workflow: the demo's is that of its first job.
pq_psql -A -t -q -c "SELECT procq.workflow_dot(min(workflow_id)) FROM procq.jobs" >"$out/workflow.dot"
dot -Tsvg "$out/workflow.dot" -o "$out/workflow.svg"
dot -Tpng -Gdpi=150 "$out/workflow.dot" -o "$out/workflow.png"
echo "workflow picture: $out/workflow.svg and $out/workflow.png (Graphviz source: $out/workflow.dot)"
