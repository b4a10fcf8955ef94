#!/usr/bin/env bash
# demo.sh: procq demo on a throwaway cluster.  Defers a small ETL workflow
# (extract -> 3 x transform -> load, plus validate -> publish where validate
# fails so publish is cancelled), runs two worker loops written in bash, then
# prints the timeline and checks that no job started before its parents ended.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh

time_limit=60 # seconds for the workers to drain the queue

q() { pq_psql -A -t -q -c "$1"; }

# Fetch and run jobs until none is todo or doing.
worker() {
    local name=shell-worker-$1 row id task args
    while :; do
        row=$(q "SELECT id, task, args FROM procq.fetch_job(worker => '$name')")
        if [[ -z $row ]]; then
            [[ $(q "SELECT count(*) FROM procq.jobs WHERE status IN ('todo', 'doing')") == 0 ]] && return 0
            sleep 0.1
            continue
        fi
        IFS='|' read -r id task args <<<"$row"
        echo "$name: job $id $task $args"
        if [[ $task == validate ]]; then
            q "SELECT procq.finish_job(job_id => $id, status => 'failed',
                   error => 'validation failed: 3 rows without a customer id')" >/dev/null
        else
            sleep 0.2
            q "SELECT procq.finish_job(job_id => $id, status => 'succeeded',
                   result => '{\"rows\": $((RANDOM % 1000))}')" >/dev/null
        fi
    done
}

pq_cluster_start
q "CREATE EXTENSION procq"

echo "== deferring the workflow"
pq_psql -q -c "SELECT * FROM procq.defer_workflow('[
    {\"key\": \"extract\",  \"task\": \"extract\",   \"args\": {\"source\": \"orders.csv\"}},
    {\"key\": \"t1\",       \"task\": \"transform\", \"args\": {\"part\": 1}, \"depends_on\": [\"extract\"]},
    {\"key\": \"t2\",       \"task\": \"transform\", \"args\": {\"part\": 2}, \"depends_on\": [\"extract\"]},
    {\"key\": \"t3\",       \"task\": \"transform\", \"args\": {\"part\": 3}, \"depends_on\": [\"extract\"]},
    {\"key\": \"load\",     \"task\": \"load\",      \"args\": {\"table\": \"orders\"}, \"depends_on\": [\"t1\", \"t2\", \"t3\"]},
    {\"key\": \"validate\", \"task\": \"validate\",  \"args\": {\"source\": \"customers.csv\"}},
    {\"key\": \"publish\",  \"task\": \"publish\",   \"args\": {}, \"depends_on\": [\"validate\"]}
]')"

echo "== running two workers"
worker 1 &
w1=$!
worker 2 &
w2=$!
deadline=$((SECONDS + time_limit))
while kill -0 "$w1" 2>/dev/null || kill -0 "$w2" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
        kill "$w1" "$w2" 2>/dev/null || true
        echo "demo: FAILED: the workers did not finish within $time_limit s" >&2
        exit 1
    fi
    sleep 0.2
done
if ! wait "$w1" || ! wait "$w2"; then
    echo "demo: FAILED: a worker failed" >&2
    exit 1
fi

echo "== timeline"
pq_psql -q -c "SELECT j.id, j.task,
       coalesce(string_agg(d.depends_on::text, ',' ORDER BY d.depends_on), '') AS parents,
       j.status, j.worker,
       to_char(j.started_at, 'HH24:MI:SS.MS') start, to_char(j.finished_at, 'HH24:MI:SS.MS') finish
  FROM procq.jobs j LEFT JOIN procq.job_dependencies d ON d.job_id = j.id
 GROUP BY j.id ORDER BY j.started_at NULLS LAST, j.id"

# Jobs that started before a parent finished, and jobs whose final status is
# not the expected one (validate failed, publish cancelled, the rest succeeded).
bad=$(q "SELECT string_agg(format('job %s started before parent %s finished', c.id, p.id), '; ')
           FROM procq.job_dependencies d
           JOIN procq.jobs c ON c.id = d.job_id JOIN procq.jobs p ON p.id = d.depends_on
          WHERE c.started_at < coalesce(p.finished_at, 'infinity')")
wrong=$(q "SELECT string_agg(format('%s is %s', task, status), '; ') FROM procq.jobs
            WHERE status <> CASE task WHEN 'validate' THEN 'failed'
                                      WHEN 'publish' THEN 'cancelled'
                                      ELSE 'succeeded' END::procq.job_status")
echo "order check: ${bad:-OK}"
echo "status check: ${wrong:-OK}"
[[ -z $bad && -z $wrong ]] || exit 1
