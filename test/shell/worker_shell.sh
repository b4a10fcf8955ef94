#!/usr/bin/env bash
# worker_shell.sh: the procq background workers run shell handlers safely.
# A handler past its timeout fails ('timed out') and its whole process group
# (a backgrounded grandchild too) is killed; stdout over
# procq.shell_output_limit is cut (job succeeded, error says so); a non-zero
# exit fails with 'exit status N' and the tail of stderr; a missing program
# fails naming it; job arguments full of shell metacharacters reach the
# program verbatim through PROCQ_ARGS and stdin and are never interpreted,
# nor are the words of the command; PROCQ_JOB_ID and PROCQ_TASK are set;
# JSON output becomes the jsonb result, other text a JSON string; with
# procq.enable_shell off shell jobs wait as todo and run once it is on; only
# superusers may register shell handlers.  Own throwaway cluster.
set -euo pipefail
# shellcheck source=test/shell/lib/worker_crash_lib.sh
source "$(dirname "$0")/lib/worker_crash_lib.sh"

pq_start 2 "procq.shell_output_limit = '64kB'"
n=$(nonce)
d=$PQ_CLUSTER_DIR/files # the handlers run as postgres: they may write here
mkdir -p "$d/canary" && touch "$d/canary/keep" && chown -R postgres: "$d"

register hang shell "/bin/sh -c 'sleep 300.$n & echo \$! >$d/bg.pid; sleep 300.$n'" 500ms
register big shell "/bin/sh -c 'head -c 1000000 /dev/zero | tr -c x x'"
register bad_exit shell "/bin/sh -c 'echo out; seq 1 5000 >&2; exit 3'"
register missing shell "procq_no_such_program_$n --flag"
register missing_abs shell "/nonexistent/procq_no_such_program_$n"
register via_stdin shell "cat"
register via_env shell "printenv PROCQ_ARGS"
register ids shell "printenv PROCQ_JOB_ID PROCQ_TASK"
register json_out shell "echo '{\"a\": [1, 2.5, null], \"b\": \"x\"}'"
register text_out shell "echo 'hello procq'"
register bad_json_out shell "echo '{not json'"
register words shell "echo \$HOME \$(touch $d/pwned_cmd) ; \`touch $d/pwned_cmd2\` '*' \"a  b\""

# Arguments that a shell would run.
args=$(pq_psql -qAt -v d="$d" <<'SQL'
SELECT jsonb_build_object(
    'subst', '$(touch ' || :'d' || '/pwned_subst)',
    'backticks', '`touch ' || :'d' || '/pwned_bt`',
    'semicolon', 'x; rm -rf ' || :'d' || '/canary; touch ' || :'d' || '/pwned_semi',
    'quotes', $q$it's "double" and 'single' \" \\ $q$,
    'others', E'a && touch ' || :'d' || E'/pwned_and | tee ' || :'d' || E'/pwned_pipe > '
              || :'d' || E'/pwned_redir\n$HOME * ~ ${PATH}')
SQL
)

hang=$(defer hang)
big=$(defer big)
bad_exit=$(defer bad_exit)
missing=$(defer missing)
missing_abs=$(defer missing_abs)
via_stdin=$(defer via_stdin "$args")
via_env=$(defer via_env "$args")
ids=$(defer ids)
json_out=$(defer json_out)
text_out=$(defer text_out)
bad_json_out=$(defer bad_json_out)
words=$(defer words)
wait_for "(SELECT count(*) FROM procq.jobs WHERE status IN ('todo', 'doing')) = 0" \
    "shell jobs did not all end" 60 \
    "SELECT id, task, status, worker FROM procq.jobs WHERE status IN ('todo', 'doing')"

check_job "$hang" "a handler past its timeout fails with 'timed out'" \
    "status = 'failed' AND error LIKE '%timed out%'"
[[ -s $d/bg.pid ]] || fail "the timed-out handler never started its grandchild"
wait_gone "300\.$n" 10 ||
    fail "a process of the timed-out handler's group survives: $(pgrep -af -- "300\.$n")"
ok "the timed-out handler's whole process group is gone (background grandchild too)"

check_job "$big" "output over the cap: succeeded, result cut to 64 kB, error says so" \
    "status = 'succeeded' AND result #>> '{}' = repeat('x', 65536)
     AND error LIKE '%cut at 64 kB%'"
check_job "$bad_exit" "a non-zero exit fails with 'exit status 3' and the stderr tail" \
    "status = 'failed' AND error LIKE 'exit status 3%' AND error LIKE E'%\n4999\n5000%'
     AND error NOT LIKE E'%\n10\n11\n%' AND length(error) < 5000"
check_job "$missing" "a program not found in PATH fails naming it" \
    "status = 'failed' AND error LIKE '%procq_no_such_program_$n%'"
check_job "$missing_abs" "a missing program path fails naming it" \
    "status = 'failed' AND error LIKE '%/nonexistent/procq_no_such_program_$n%'"

check_job "$via_stdin" "metacharacters in args reach the program verbatim on stdin" \
    "status = 'succeeded' AND result = args AND args->>'subst' LIKE '\$(touch %'"
check_job "$via_env" "metacharacters in args reach the program verbatim in PROCQ_ARGS" \
    "status = 'succeeded' AND result = args"
check_job "$words" "the command's words are not expanded either" \
    "status = 'succeeded' AND result = to_jsonb('\$HOME \$(touch $d/pwned_cmd) ; \`touch $d/pwned_cmd2\` * a  b'::text)"
pwned=$(find "$d" -name 'pwned*')
[[ -z $pwned ]] || fail "shell metacharacters were interpreted, files created: $pwned"
[[ -f $d/canary/keep ]] || fail "shell metacharacters were interpreted: the canary dir was removed"
ok "no metacharacter was interpreted (no file created, canary kept)"

check_job "$ids" "PROCQ_JOB_ID and PROCQ_TASK are set" \
    "status = 'succeeded' AND result = to_jsonb(id || E'\n' || task)"
check_job "$json_out" "JSON on stdout becomes the jsonb result" \
    "status = 'succeeded' AND result = '{\"a\": [1, 2.5, null], \"b\": \"x\"}'::jsonb"
check_job "$text_out" "plain text on stdout becomes a JSON string (no trailing newline)" \
    "status = 'succeeded' AND result = '\"hello procq\"'::jsonb"
check_job "$bad_json_out" "text that is not valid JSON becomes a JSON string" \
    "status = 'succeeded' AND result = '\"{not json\"'::jsonb"

# procq.enable_shell off: shell jobs stay todo while SQL jobs still run.
pq_psql -q -c "ALTER SYSTEM SET procq.enable_shell = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1 # let the idle workers read the new setting
register probe sql "SELECT \$2"
probe=$(defer probe)
wait_for "(SELECT status = 'succeeded' FROM procq.jobs WHERE id = $probe)" "SQL probe job did not run"
off=$(defer text_out)
probe=$(defer probe)
wait_for "(SELECT status = 'succeeded' FROM procq.jobs WHERE id = $probe)" "SQL probe job did not run"
sleep 2 # ten poll intervals
check_job "$off" "with procq.enable_shell off a shell job stays todo (a later SQL job ran)" \
    "status = 'todo' AND attempts = 0"
pq_psql -q -c "ALTER SYSTEM SET procq.enable_shell = on" -c "SELECT pg_reload_conf()" >/dev/null
wait_for "(SELECT status <> 'todo' FROM procq.jobs WHERE id = $off)" \
    "the shell job did not run after procq.enable_shell was turned on"
check_job "$off" "after turning procq.enable_shell on it runs" "status = 'succeeded'"

# Shell handlers are for superusers; the same role may register a SQL one.
sql "CREATE ROLE plain LOGIN; GRANT USAGE ON SCHEMA procq TO plain;
     GRANT EXECUTE ON FUNCTION procq.register_handler(text, text, text, interval) TO plain"
if out=$(pq_psql -U plain -v VERBOSITY=verbose \
    -c "SELECT procq.register_handler('plain_shell', 'shell', 'true')" 2>&1); then
    fail "a non-superuser registered a shell handler"
fi
[[ $out == *42501* ]] || fail "a non-superuser's shell handler was refused, but not with 42501: $out"
[[ $(sql "SELECT count(*) FROM procq.handlers WHERE task = 'plain_shell'") == 0 ]] ||
    fail "the refused shell handler was stored"
pq_psql -q -U plain -c "SELECT procq.register_handler('plain_sql', 'sql', 'SELECT 1')" >/dev/null ||
    fail "the non-superuser could not register a SQL handler either"
ok "a non-superuser cannot register a shell handler (42501), but can a SQL one"
