#!/usr/bin/env bash
# worker_privileges.sh: a background worker runs a SQL handler with the
# privileges of the role that deferred the job, never more.  A superuser's
# handler deferred by alice writes alice's table, the same deferred by bob
# fails (42501) and writes nothing; a handler runs only for roles whose
# privileges its registrar has (bob's handler fails alice's job); only
# superusers register shell handlers; nobody replaces another role's handler;
# a handler cannot become the worker's superuser session user (SET ROLE,
# SET SESSION AUTHORIZATION, set_config, RESET ROLE, in a function too) nor
# use superuser powers (ALTER ROLE, pg_read_file, COPY TO PROGRAM); and a
# role cannot forge jobs.deferred_by or procq.handlers.registered_by.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=test/shell/lib/worker.sh
source test/shell/lib/worker.sh

pq_worker_cluster "procq.workers = 3"
pwned=$PQ_CLUSTER_DIR/pwned

q "
CREATE ROLE alice LOGIN NOSUPERUSER;
CREATE ROLE bob LOGIN NOSUPERUSER;
GRANT USAGE ON SCHEMA procq TO alice, bob;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO alice, bob;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE TABLE alice_table (job_id bigint, who text NOT NULL DEFAULT current_user, what text);
GRANT SELECT, INSERT ON alice_table TO alice;
CREATE TABLE shared_log (job_id bigint, who text NOT NULL DEFAULT current_user);
GRANT SELECT, INSERT ON shared_log TO alice, bob;
CREATE TABLE su_only (job_id bigint, who text NOT NULL DEFAULT current_user);
SELECT procq.register_handler('write', 'sql',
    'INSERT INTO public.alice_table (job_id, what) VALUES (\$2, \$1->>''what'') RETURNING who');
" >/dev/null

# --- The superuser's handler runs as the role that deferred the job.
a=$(q -U alice "SELECT procq.defer('write', '{\"what\": \"by alice\"}')")
b=$(q -U bob "SELECT procq.defer('write', '{\"what\": \"by bob\"}')")
p=$(q "SELECT procq.defer('write', '{\"what\": \"by postgres\"}')")
wait_final "the write jobs" "$a, $b, $p"
got=$(q "SELECT string_agg(concat_ws(' ', id, deferred_by, status, result), ',' ORDER BY id)
         FROM procq.jobs WHERE id IN ($a, $b, $p)")
[[ $got == "$a alice succeeded \"alice\",$b bob failed,$p postgres succeeded \"postgres\"" ]] ||
    fail "write jobs [id deferred_by status result]: [$got]"
err=$(q "SELECT error FROM procq.jobs WHERE id = $b")
[[ $err == "permission denied for table alice_table (SQLSTATE 42501)"* ]] || fail "error of bob's write job: [$err]"
got=$(q "SELECT string_agg(job_id || ' ' || who || ' ' || what, ',' ORDER BY job_id) FROM alice_table")
[[ $got == "$a alice by alice,$p postgres by postgres" ]] || fail "alice_table: [$got]"
ok "a superuser's handler runs as the deferring role: alice may write, bob fails with 42501 and writes nothing"

# --- Shell handlers are for superusers; handlers belong to their registrar.
expect_sqlstate 42501 "bob registers a shell handler" -U bob \
    "SELECT procq.register_handler('bobs_shell', 'shell', '/bin/true')"
[[ $(q "SELECT count(*) FROM procq.handlers WHERE task = 'bobs_shell'") == 0 ]] || fail "bob's shell handler was stored"
ok "a non-superuser cannot register a shell handler (42501)"
for who in bob alice; do
    expect_sqlstate 42501 "$who replaces the superuser's handler" -U "$who" \
        "SELECT procq.register_handler('write', 'sql', 'ALTER ROLE $who SUPERUSER')"
    expect_sqlstate 42501 "$who unregisters the superuser's handler" -U "$who" \
        "SELECT procq.unregister_handler('write')"
done
got=$(q "SELECT registered_by || ' ' || command FROM procq.handlers WHERE task = 'write'")
[[ $got == "postgres INSERT INTO public.alice_table"* ]] || fail "handler 'write' changed: [$got]"
ok "bob and alice can neither replace nor unregister the superuser's handler (42501)"

# --- bob's handler runs for bob, but not for alice: bob may not act as alice
# (alice could write shared_log herself; the handler is what is refused).
q -U bob "SELECT procq.register_handler('bobs_task', 'sql',
    'INSERT INTO public.shared_log (job_id) VALUES (\$2) RETURNING who')" >/dev/null
bj=$(q -U bob "SELECT procq.defer('bobs_task')")
aj=$(q -U alice "SELECT procq.defer('bobs_task')")
wait_final "bob's job of his handler" "$bj"
sleep 1   # several polls: the workers had every chance to take alice's job
got=$(q "SELECT string_agg(concat_ws(' ', deferred_by, status, attempts, result), ',' ORDER BY id) FROM procq.jobs WHERE id IN ($bj, $aj)")
[[ $got == "bob succeeded 1 \"bob\",alice todo 0" ]] || fail "jobs of bob's handler [deferred_by status attempts result]: [$got]"
got=$(q "SELECT string_agg(job_id || ' ' || who, ',') FROM shared_log")
[[ $got == "$bj bob" ]] || fail "shared_log: [$got], expected only bob's job"
ok "bob's handler never runs alice's job (bob may not act as alice): it stays todo for external workers, with no effect"

# --- alice's handlers cannot escalate to the worker's superuser session.
q -U alice "
CREATE FUNCTION alice.escalate(job bigint) RETURNS text LANGUAGE plpgsql AS \$\$
BEGIN
    SET ROLE postgres;
    INSERT INTO public.su_only (job_id) VALUES (job);
    RETURN current_user;
END \$\$;
SELECT procq.register_handler('esc_set_role', 'sql', 'SET ROLE postgres');
SELECT procq.register_handler('esc_session', 'sql', 'SET SESSION AUTHORIZATION postgres');
SELECT procq.register_handler('esc_set_config', 'sql',
    \$\$SELECT set_config('role', 'postgres', false), current_user\$\$);
SELECT procq.register_handler('esc_reset_role', 'sql', 'RESET ROLE');
SELECT procq.register_handler('esc_function', 'sql', 'SELECT alice.escalate(\$2)');
SELECT procq.register_handler('esc_do', 'sql',
    \$\$DO 'BEGIN SET SESSION AUTHORIZATION postgres; INSERT INTO public.su_only (job_id) VALUES (0); END'\$\$);
SELECT procq.register_handler('esc_alter_role', 'sql', 'ALTER ROLE alice SUPERUSER');
SELECT procq.register_handler('esc_read_file', 'sql', \$\$SELECT pg_read_file('PG_VERSION')\$\$);
SELECT procq.register_handler('esc_program', 'sql', \$\$COPY (SELECT 1) TO PROGRAM 'touch $pwned'\$\$);
SELECT procq.defer(t) FROM unnest(ARRAY['esc_set_role', 'esc_session', 'esc_set_config',
    'esc_reset_role', 'esc_function', 'esc_do', 'esc_alter_role', 'esc_read_file', 'esc_program']) t;
" >/dev/null
wait_final "alice's escalation jobs" "SELECT id FROM procq.jobs WHERE task LIKE 'esc\_%'"
got=$(q "SELECT string_agg(task || ' ' || status, ',' ORDER BY task) FROM procq.jobs
         WHERE task LIKE 'esc\_%' AND NOT (status = 'failed' AND error LIKE '%(SQLSTATE 42501)%')")
[[ -z $got ]] || fail "escalation jobs that did not fail with 42501: [$got]"
[[ $(q "SELECT count(*) FROM procq.jobs WHERE task LIKE 'esc\_%'") == 9 ]] || fail "not 9 escalation jobs"
got=$(q "SELECT (SELECT count(*) FROM su_only) || ' ' || (SELECT rolsuper FROM pg_roles WHERE rolname = 'alice')")
[[ $got == "0 false" ]] || fail "[rows in su_only, alice is superuser] = [$got], expected [0 false]"
[[ ! -e $pwned ]] || fail "COPY TO PROGRAM ran for alice's job"
ok "SET ROLE, SET SESSION AUTHORIZATION, set_config('role'), RESET ROLE, ALTER ROLE, pg_read_file and COPY TO PROGRAM fail with 42501 in alice's jobs"

# --- Nor can a role forge who deferred a job or who registered a handler.
expect_sqlstate 42501 "alice changes deferred_by" -U alice \
    "UPDATE procq.jobs SET deferred_by = 'postgres' WHERE id = $a"
expect_sqlstate 42501 "alice inserts a handler" -U alice \
    "INSERT INTO procq.handlers (task, kind, command, registered_by) VALUES ('forged', 'sql', 'SELECT 1', 'postgres')"
ok "alice can neither change jobs.deferred_by nor write procq.handlers (42501)"
