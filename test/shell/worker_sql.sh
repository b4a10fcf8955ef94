#!/usr/bin/env bash
# worker_sql.sh: how a background worker runs SQL handlers.  A failing
# handler's writes are rolled back and its job records the error (message,
# SQLSTATE, DETAIL, HINT, CONTEXT) while its neighbours in the same batch
# transaction succeed; failed jobs are retried up to max_attempts; settings a
# handler changes do not reach the next job; a handler's timeout cancels it
# like statement_timeout (57014); the result is the first column of the
# first row as jsonb (NULL without rows); a command of two statements is
# refused at registration.
# One worker on purpose: then jobs deferred in one transaction run in one
# batch in one process, so "same batch" and "next job" are certain.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=test/shell/lib/worker.sh
source test/shell/lib/worker.sh

pq_worker_cluster "procq.workers = 1" "procq.batch_size = 100"

q "
CREATE TABLE effects (job_id bigint, xid bigint, note text);
CREATE SEQUENCE flaky_calls;
CREATE SEQUENCE hopeless_calls;
-- Writes an effect, then fails when args ask for it.
CREATE FUNCTION step(args jsonb, job bigint) RETURNS int LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO effects VALUES (job, txid_current(), 'step');
    IF args ? 'raise' THEN
        RAISE EXCEPTION 'job % broke in transaction %', job, txid_current()
            USING DETAIL = 'the detail', HINT = 'the hint';
    END IF;
    RETURN 1 / (args->>'divisor')::int;
END \$\$;
-- Sequences are not rolled back: they count the calls.
CREATE FUNCTION flaky(job bigint) RETURNS bigint LANGUAGE plpgsql AS \$\$
DECLARE n bigint := nextval('flaky_calls');
BEGIN
    INSERT INTO effects VALUES (job, txid_current(), 'flaky call ' || n);
    IF n < 3 THEN RAISE EXCEPTION 'flaky call % fails', n; END IF;
    RETURN n;
END \$\$;
CREATE FUNCTION hopeless(job bigint) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE n bigint := nextval('hopeless_calls');
BEGIN
    INSERT INTO effects VALUES (job, txid_current(), 'hopeless call ' || n);
    RAISE EXCEPTION 'hopeless call % fails', n;
END \$\$;
SELECT procq.register_handler('step', 'sql', 'SELECT step(\$1, \$2)');
SELECT procq.register_handler('flaky', 'sql', 'SELECT flaky(\$2)');
SELECT procq.register_handler('hopeless', 'sql', 'SELECT hopeless(\$2)');
SELECT procq.register_handler('sleepy', 'sql', 'SELECT pg_sleep(10)', '300ms');
SELECT procq.register_handler('nap', 'sql', 'SELECT 1 FROM pg_sleep(0.5)');
SELECT procq.register_handler('report', 'sql', \$\$SELECT jsonb_build_object(
    'search_path', current_setting('search_path'), 'work_mem', current_setting('work_mem'),
    'lock_timeout', current_setting('lock_timeout'),
    'statement_timeout', current_setting('statement_timeout'), 'user', current_user)\$\$);
SELECT procq.register_handler('set_path', 'sql', 'SET search_path = leaked, pg_catalog');
SELECT procq.register_handler('set_mem', 'sql', 'SET work_mem = ''77MB''');
SELECT procq.register_handler('set_config', 'sql',
    \$\$SELECT set_config('lock_timeout', '4321', false), set_config('statement_timeout', '5432', false)\$\$);
SELECT procq.register_handler('set_and_fail', 'sql', \$\$SELECT set_config('work_mem', '99MB', false), 1/0\$\$);
SELECT procq.register_handler('res_jsonb', 'sql', \$\$SELECT jsonb_build_object('job', \$2, 'args', \$1)\$\$);
SELECT procq.register_handler('res_jsonb_string', 'sql', \$\$SELECT '\"as is\"'::jsonb\$\$);
SELECT procq.register_handler('res_int', 'sql', 'SELECT 40 + 2');
SELECT procq.register_handler('res_text', 'sql', \$\$SELECT 'hello'::text\$\$);
SELECT procq.register_handler('res_rows', 'sql', 'SELECT x, -x FROM generate_series(7, 9) x ORDER BY x');
SELECT procq.register_handler('res_no_rows', 'sql', 'SELECT 1 WHERE false');
SELECT procq.register_handler('res_null', 'sql', 'SELECT NULL::int');
SELECT procq.register_handler('res_insert', 'sql', \$\$INSERT INTO effects VALUES (\$2, 0, 'insert')\$\$);
SELECT procq.register_handler('res_void', 'sql', \$\$SELECT pg_notify('procq_test', \$2::text)\$\$);
SELECT procq.register_handler('res_returning', 'sql',
    \$\$INSERT INTO effects VALUES (\$2, 0, 'returning') RETURNING note\$\$);
" >/dev/null

# --- A failing handler in a batch: rolled back alone, error recorded.
q "BEGIN;
SELECT procq.defer('step', '{\"divisor\": 1}');
SELECT procq.defer('step', '{\"raise\": true}');
SELECT procq.defer('step', '{\"divisor\": 1}');
SELECT procq.defer('step', '{\"divisor\": 0}');
SELECT procq.defer('step', '{\"divisor\": 1}');
COMMIT" >/dev/null
wait_final "the batch of step jobs" "SELECT id FROM procq.jobs WHERE task = 'step'"
got=$(q "SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM procq.jobs WHERE task = 'step'")
[[ $got == "1:succeeded 2:failed 3:succeeded 4:failed 5:succeeded" ]] ||
    fail "batch with failing jobs: statuses [$got]"
ok "only the failing jobs of a batch fail ($got)"
got=$(q "SELECT string_agg(job_id::text, ',' ORDER BY job_id) FROM effects")
[[ $got == "1,3,5" ]] || fail "effects of the batch: jobs [$got], expected 1,3,5 (failed jobs rolled back)"
ok "the writes of the failing handlers were rolled back, the others kept"
# The raising job says which transaction it ran in: its neighbours' effects
# committed in that same transaction.
got=$(q "SELECT count(*) FROM effects e, procq.jobs j
         WHERE j.id = 2 AND e.xid = substring(j.error FROM 'in transaction ([0-9]+)')::bigint")
[[ $got == 3 ]] || fail "the succeeded jobs did not run in the failing job's transaction ($got of 3 did)"
ok "the failing job and its 3 neighbours shared one transaction"
err=$(q "SELECT error FROM procq.jobs WHERE id = 2")
for part in "job 2 broke in transaction " "(SQLSTATE P0001)" $'\nDETAIL: the detail' \
    $'\nHINT: the hint' $'\nCONTEXT: PL/pgSQL function step(jsonb,bigint) line'; do
    [[ $err == *"$part"* ]] || fail "error of the RAISE job lacks [$part]: [$err]"
done
ok "a raised error is recorded with message, SQLSTATE, DETAIL, HINT and CONTEXT"
err=$(q "SELECT error FROM procq.jobs WHERE id = 4")
[[ $err == "division by zero (SQLSTATE 22012)"$'\nCONTEXT: '* ]] ||
    fail "error of the division by zero job: [$err]"
ok "a division by zero is recorded with its SQLSTATE 22012 and CONTEXT"

# --- Retries.
flaky=$(q "SELECT procq.defer('flaky', max_attempts => 3)")
hopeless=$(q "SELECT procq.defer('hopeless', max_attempts => 3)")
wait_final "the retried jobs" "$flaky, $hopeless"
got=$(q "SELECT status || ' ' || attempts || ' ' || result || ' ' || (error IS NULL)
         FROM procq.jobs WHERE id = $flaky")
[[ $got == "succeeded 3 3 true" ]] || fail "flaky job (fails twice): [$got], expected succeeded after 3 attempts"
got=$(q "SELECT string_agg(note, ',') FROM effects WHERE job_id = $flaky")
[[ $got == "flaky call 3" ]] || fail "flaky job effects [$got]: only the successful call's write should stay"
ok "a job failing twice succeeds at attempt 3 of 3, with only its last write kept"
got=$(q "SELECT status || ' ' || attempts || ' ' || error FROM procq.jobs WHERE id = $hopeless")
[[ $got == "failed 3 hopeless call 3 fails (SQLSTATE P0001)"* ]] ||
    fail "always failing job: [$got], expected failed after 3 attempts"
got=$(q "SELECT (SELECT last_value FROM hopeless_calls) || ' ' || count(*) FROM effects WHERE job_id = $hopeless")
[[ $got == "3 0" ]] || fail "always failing job: [calls, effects] = [$got], expected [3 0]"
ok "an always failing job ends failed after 3 attempts, with nothing written"

# --- Settings changed by a handler do not reach the next job: not in the
# same batch (the reporter waits for the setters), nor in a later one.
baseline_id=$(q "SELECT procq.defer('report')")
wait_final "the baseline report" "$baseline_id"
baseline=$(q "SELECT result FROM procq.jobs WHERE id = $baseline_id AND status = 'succeeded'")
[[ $baseline == *'"work_mem": "4MB"'* ]] || fail "baseline settings unexpected: [$baseline]"
q "BEGIN;
SELECT procq.defer('set_path');
SELECT procq.defer('set_mem');
SELECT procq.defer('set_config');
SELECT procq.defer('set_and_fail');
SELECT procq.defer('report', depends_on => ARRAY(SELECT id FROM procq.jobs
    WHERE task IN ('set_path', 'set_mem', 'set_config')));
COMMIT" >/dev/null
same=$(q "SELECT max(id) FROM procq.jobs WHERE task = 'report'")
wait_final "the setters and their report" "SELECT id FROM procq.jobs WHERE id > $baseline_id"
got=$(q "SELECT string_agg(task || ':' || status, ' ' ORDER BY id) FROM procq.jobs WHERE id > $baseline_id")
[[ $got == "set_path:succeeded set_mem:succeeded set_config:succeeded set_and_fail:failed report:succeeded" ]] ||
    fail "setter jobs and their report: [$got]"
got=$(q "SELECT result FROM procq.jobs WHERE task = 'set_config'")
[[ $got == '"4321ms"' ]] || fail "set_config in a handler did not take effect there: result [$got]"
got=$(q "SELECT result FROM procq.jobs WHERE id = $same AND status = 'succeeded'")
[[ $got == "$baseline" ]] || fail "settings leaked into the next job of the batch: [$got], baseline [$baseline]"
later=$(q "SELECT procq.defer('report')")
wait_final "the later report" "$later"
got=$(q "SELECT result FROM procq.jobs WHERE id = $later AND status = 'succeeded'")
[[ $got == "$baseline" ]] || fail "settings leaked into a later batch: [$got], baseline [$baseline]"
ok "SET search_path/work_mem and set_config in a handler do not leak into later jobs"

# --- Timeout = statement timeout.
sleepy=$(q "SELECT procq.defer('sleepy')")
nap=$(q "SELECT procq.defer('nap')")
wait_final "the job with a 300ms timeout" "$sleepy, $nap"
got=$(q "SELECT status || ' ' || (finished_at - started_at < interval '9 s') || ' ' || error
         FROM procq.jobs WHERE id = $sleepy")
[[ $got == "failed true canceling statement due to statement timeout (SQLSTATE 57014)"* ]] ||
    fail "pg_sleep(10) with timeout 300ms: [$got]"
got=$(q "SELECT status FROM procq.jobs WHERE id = $nap")
[[ $got == succeeded ]] || fail "a job without timeout after the timed out one: $got"
ok "a handler's timeout cancels it with SQLSTATE 57014 well before pg_sleep(10) ends"

# --- Results: first column of the first row, as jsonb.
q "SELECT procq.defer(t, '{\"a\": [1, 2]}') FROM unnest(ARRAY['res_jsonb', 'res_jsonb_string',
    'res_int', 'res_text', 'res_rows', 'res_no_rows', 'res_null', 'res_insert', 'res_returning']) t" >/dev/null
wait_final "the result jobs" "SELECT id FROM procq.jobs WHERE task LIKE 'res\_%'"
while IFS='|' read -r task expected; do
    got=$(q "SELECT status || ' ' || coalesce(result::text, 'NULL') || ' ' || coalesce(jsonb_typeof(result), '-')
             FROM procq.jobs WHERE task = '$task'")
    [[ $got == "succeeded $expected" ]] || fail "result of $task: [$got], expected [succeeded $expected]"
done <<EOF
res_jsonb_string|"as is" string
res_int|42 number
res_text|"hello" string
res_rows|7 number
res_no_rows|NULL -
res_null|NULL -
res_insert|NULL -
res_returning|"returning" string
EOF
got=$(q "SELECT result = jsonb_build_object('job', id, 'args', args) FROM procq.jobs WHERE task = 'res_jsonb'")
[[ $got == t ]] || fail "result of res_jsonb is not the jsonb it returned"
ok "results: jsonb as is, int and text converted, first column of the first row, NULL without rows"

# --- A command must be one statement.
expect_sqlstate 22023 "two statements" "SELECT procq.register_handler('two', 'sql', 'SELECT 1; SELECT 2')"
expect_sqlstate 22023 "no statement" "SELECT procq.register_handler('two', 'sql', ' ; ')"
[[ $(q "SELECT count(*) FROM procq.handlers WHERE task = 'two'") == 0 ]] || fail "a refused handler was stored"
q "SELECT procq.register_handler('two', 'sql', 'SELECT 1;')" >/dev/null
ok "a sql handler with two statements (or none) is refused at registration, one with a ';' is not"

# --- A handler whose first column is void (a void function) succeeds.
# Last, so that a failure here hides no other check.
void=$(q "SELECT procq.defer('res_void')")
wait_final "the void result job" "$void"
got=$(q "SELECT status || ' ' || coalesce(error, '') FROM procq.jobs WHERE id = $void")
[[ $got == "succeeded "* ]] || fail "a handler returning void (SELECT pg_notify(...)): [$got], expected succeeded"
ok "a handler returning void succeeds"
