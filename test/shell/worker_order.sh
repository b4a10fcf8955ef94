#!/usr/bin/env bash
# worker_order.sh: three background workers run SQL and shell jobs of a
# dependency graph (extract -> 3 transforms -> load, and a fan-in of load
# and two independent jobs) in dependency order: every job succeeds, once,
# and starts only after all its parents finished; shell results are stored
# as JSON.  Jobs of a task without a handler, or whose handler was
# unregistered, stay todo for procq.fetch_job.  The workers show in
# pg_stat_activity and procq.worker_status, with the job they are running.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=test/shell/lib/worker.sh
source test/shell/lib/worker.sh

pq_worker_cluster "procq.workers = 3" "procq.enable_shell = on"

step_sh=$PQ_CLUSTER_DIR/step.sh
cat >"$step_sh" <<'EOF'
#!/bin/sh
# Shell handler of worker_order.sh: prints its job as JSON (args from stdin too).
stdin=$(cat)
sleep 0.1
printf '{"job": %s, "task": "%s", "args": %s, "stdin": %s}\n' \
    "$PROCQ_JOB_ID" "$PROCQ_TASK" "$PROCQ_ARGS" "$stdin"
EOF
chmod 755 "$step_sh"

q "
CREATE TABLE effects (job_id bigint PRIMARY KEY, at timestamptz NOT NULL);
CREATE TABLE released (job_id bigint PRIMARY KEY);
-- Runs until the test releases the job (at most 60 s).
CREATE FUNCTION wait_for_release(job bigint) RETURNS bigint LANGUAGE plpgsql AS \$\$
BEGIN
    FOR i IN 1..600 LOOP
        IF EXISTS (SELECT 1 FROM released WHERE job_id = job) THEN RETURN job; END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RAISE EXCEPTION 'job % was not released within 60 s', job;
END \$\$;
SELECT procq.register_handler(t, 'sql',
    'INSERT INTO effects SELECT \$2, clock_timestamp() FROM pg_sleep(0.05) RETURNING job_id')
FROM unnest(ARRAY['extract', 'transform', 'load', 'side', 'gone']) t;
SELECT procq.register_handler(t, 'shell', '$step_sh')
FROM unnest(ARRAY['transform_sh', 'side_sh', 'report_sh']) t;
SELECT procq.register_handler('slow', 'sql', 'SELECT wait_for_release(\$2)');
" >/dev/null

# --- The workers are visible.
wait_until "3 'procq worker' rows in pg_stat_activity" \
    "SELECT count(*) = 3 FROM pg_stat_activity WHERE backend_type = 'procq worker'"
got=$(q "SELECT string_agg(worker, ',' ORDER BY worker) FROM procq.worker_status
         WHERE pid IN (SELECT pid FROM pg_stat_activity WHERE backend_type = 'procq worker')")
[[ $got == "procq worker 1,procq worker 2,procq worker 3" ]] || fail "procq.worker_status: [$got]"
ok "pg_stat_activity shows 3 'procq worker' backends; procq.worker_status lists them"

# --- A running job shows in pg_stat_activity and procq.worker_status.
slow=$(q "SELECT procq.defer('slow')")
wait_until "pg_stat_activity to show 'job $slow (slow)' for a procq worker" \
    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                    WHERE backend_type = 'procq worker' AND query = 'job $slow (slow)')"
got=$(q "SELECT state || ' ' || job_id || ' ' || task || ' ' || (job_started_at IS NOT NULL)
         FROM procq.worker_status WHERE job_id = $slow")
[[ $got == "running sql $slow slow true" ]] || fail "worker_status while job $slow runs: [$got]"
got=$(q "SELECT count(*) FROM procq.worker_status w JOIN pg_stat_activity a USING (pid)
         WHERE w.job_id = $slow AND a.query = 'job $slow (slow)'")
[[ $got == 1 ]] || fail "worker_status and pg_stat_activity disagree on who runs job $slow"
ok "while job $slow runs, its worker shows 'job $slow (slow)' and state 'running sql'"
q "INSERT INTO released VALUES ($slow)"
wait_final "the released slow job" "$slow"
[[ $(q "SELECT status FROM procq.jobs WHERE id = $slow") == succeeded ]] || fail "slow job did not succeed"

# --- unregister_handler: the handler worked, then is gone.
gone=$(q "SELECT procq.defer('gone')")
wait_final "the first job of task gone" "$gone"
[[ $(q "SELECT status FROM procq.jobs WHERE id = $gone") == succeeded ]] || fail "job of task gone did not succeed"
[[ $(q "SELECT procq.unregister_handler('gone')") == t ]] || fail "unregister_handler('gone') did not return true"
[[ $(q "SELECT procq.unregister_handler('gone')") == f ]] || fail "unregister_handler('gone') twice did not return false"

# --- The graph, three times over, plus a job without handler and one whose
# handler was unregistered; these two have the highest priority, so a
# worker that could take them would take them before the others.
workflow='[
  {"key": "extract", "task": "extract", "args": {"n": N}},
  {"key": "t1", "task": "transform", "args": {"n": N, "t": 1}, "depends_on": ["extract"]},
  {"key": "t2", "task": "transform_sh", "args": {"n": N, "t": 2}, "depends_on": ["extract"]},
  {"key": "t3", "task": "transform", "args": {"n": N, "t": 3}, "depends_on": ["extract"]},
  {"key": "load", "task": "load", "args": {"n": N}, "depends_on": ["t1", "t2", "t3"]},
  {"key": "side1", "task": "side_sh", "args": {"n": N}},
  {"key": "side2", "task": "side", "args": {"n": N}},
  {"key": "report", "task": "report_sh", "args": {"n": N}, "depends_on": ["load", "side1", "side2"]}]'
first=$(q "BEGIN;
SELECT procq.defer('no_handler', priority => 100);
SELECT procq.defer('gone', priority => 100);
SELECT count(*) FROM procq.defer_workflow('${workflow//N/1}');
SELECT count(*) FROM procq.defer_workflow('${workflow//N/2}');
SELECT count(*) FROM procq.defer_workflow('${workflow//N/3}');
COMMIT" | sed -n 1p)
orphan=$first
gone2=$((first + 1))
graph="SELECT id FROM procq.jobs WHERE id > $gone2"
wait_final "the 24 jobs of the graphs" "$graph"

got=$(q "SELECT count(*) || ' ' || count(*) FILTER (WHERE status = 'succeeded') FROM procq.jobs WHERE id > $gone2")
[[ $got == "24 24" ]] || fail "graph jobs [total succeeded] = [$got], expected [24 24]: $(q "
    SELECT string_agg(id || ' ' || task || ' ' || status || ' ' || coalesce(error, ''), E'\n')
    FROM procq.jobs WHERE id > $gone2 AND status <> 'succeeded'")"
ok "all 24 SQL and shell jobs of the graphs succeeded"

got=$(q "SELECT count(*) || ' ' || count(*) FILTER (WHERE c.started_at < p.finished_at)
         FROM procq.job_dependencies d JOIN procq.jobs c ON c.id = d.job_id
         JOIN procq.jobs p ON p.id = d.depends_on WHERE d.job_id > $gone2")
[[ $got == "27 0" ]] || fail "[edges, children started before a parent finished] = [$got], expected [27 0]"
ok "every job started after all its parents finished (27 edges)"

got=$(q "SELECT count(*) || ' ' || count(e.job_id) || ' ' || count(*) FILTER (WHERE j.result = to_jsonb(j.id))
         FROM procq.jobs j LEFT JOIN effects e ON e.job_id = j.id
         WHERE j.id > $gone2 AND j.task IN ('extract', 'transform', 'load', 'side')")
[[ $got == "15 15 15" ]] || fail "[SQL jobs, with an effect, with result = id] = [$got], expected [15 15 15]"
got=$(q "SELECT count(*) || ' ' || count(*) FILTER (WHERE ec.at < ep.at)
         FROM procq.job_dependencies d JOIN effects ec ON ec.job_id = d.job_id
         JOIN effects ep ON ep.job_id = d.depends_on")
[[ $got == "12 0" ]] || fail "[SQL-to-SQL edges, child effect before parent effect] = [$got], expected [12 0]"
ok "each SQL job wrote its effect once, after its SQL parents' effects"

got=$(q "SELECT count(*) || ' ' || count(*) FILTER (WHERE jsonb_typeof(result) = 'object'
             AND result = jsonb_build_object('job', id, 'task', task, 'args', args, 'stdin', args))
         FROM procq.jobs WHERE id > $gone2 AND task LIKE '%\_sh'")
[[ $got == "9 9" ]] || fail "[shell jobs, with their JSON as result] = [$got], expected [9 9]"
ok "the 9 shell jobs stored their printed JSON as a JSON object result"
echo "# the graph jobs ran on $(q "SELECT count(DISTINCT worker) FROM procq.jobs WHERE id > $gone2") worker(s)"

# --- Jobs without a handler stayed todo; an external worker takes them.
got=$(q "SELECT string_agg(id || ' ' || status || ' ' || attempts || ' ' || (worker IS NULL), ',' ORDER BY id)
         FROM procq.jobs WHERE id IN ($orphan, $gone2)")
[[ $got == "$orphan todo 0 true,$gone2 todo 0 true" ]] ||
    fail "jobs of a task without handler / with an unregistered handler: [$got], expected todo and untouched"
got=$(q "SELECT id FROM procq.fetch_job(worker => 'external')"),$(q "SELECT id FROM procq.fetch_job(worker => 'external')")
[[ $got == "$orphan,$gone2" ]] || fail "procq.fetch_job returned [$got], expected [$orphan,$gone2]"
ok "jobs of a task without handler, or after unregister_handler, stay todo for procq.fetch_job"
