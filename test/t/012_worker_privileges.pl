# A background worker runs a SQL handler with the privileges of the role
# that deferred the job, never more.  A superuser's handler deferred by alice
# writes alice's table, the same deferred by bob fails (42501) and writes
# nothing; a handler runs only for roles whose privileges its registrar has
# (bob's handler fails alice's job); only superusers register shell
# handlers; only an administrator of handlers (INSERT, UPDATE, DELETE on
# procq.handlers) registers them; nobody replaces another role's handler; a handler cannot become
# the worker's superuser session user (SET ROLE, SET SESSION AUTHORIZATION,
# set_config, RESET ROLE, in a function too) nor use superuser powers (ALTER
# ROLE, pg_read_file, COPY TO PROGRAM); and a role cannot forge
# jobs.deferred_by or procq.handlers.registered_by.
#
# Each group of checks that the bash test (test/shell/worker_privileges.sh)
# closed with one "ok" line is a subtest of that name.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ProcqTest;

my $node = procq_node('privileges', conf => ['procq.workers = 3']);
my $pwned = $node->basedir . '/pwned';

sql($node, q{
CREATE ROLE alice LOGIN NOSUPERUSER;
CREATE ROLE bob LOGIN NOSUPERUSER;
GRANT USAGE ON SCHEMA procq TO alice, bob;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO alice, bob;
CREATE ROLE carol LOGIN NOSUPERUSER;
GRANT USAGE ON SCHEMA procq TO carol;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO carol;
-- alice and bob administer handlers (README, Privileges); carol does not
GRANT SELECT, INSERT, UPDATE, DELETE ON procq.handlers TO alice, bob;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE TABLE alice_table (job_id bigint, who text NOT NULL DEFAULT current_user, what text);
GRANT SELECT, INSERT ON alice_table TO alice;
CREATE TABLE shared_log (job_id bigint, who text NOT NULL DEFAULT current_user);
GRANT SELECT, INSERT ON shared_log TO alice, bob;
CREATE TABLE su_only (job_id bigint, who text NOT NULL DEFAULT current_user);
SELECT procq.register_handler('write', 'sql',
    'INSERT INTO public.alice_table (job_id, what) VALUES ($2, $1->>''what'') RETURNING who');
});

# --- The superuser's handler runs as the role that deferred the job.
my $ja = sql($node, q{SELECT procq.defer('write', '{"what": "by alice"}')}, user => 'alice');
my $jb = sql($node, q{SELECT procq.defer('write', '{"what": "by bob"}')}, user => 'bob');
my $jp = sql($node, q{SELECT procq.defer('write', '{"what": "by postgres"}')});
subtest 'a superuser\'s handler runs as the deferring role: alice may write, bob fails with 42501 and writes nothing' => sub {
	wait_final($node, 'the write jobs', "$ja, $jb, $jp");
	is( sql($node, "SELECT string_agg(concat_ws(' ', id, deferred_by, status, result), ',' ORDER BY id)
         FROM procq.jobs WHERE id IN ($ja, $jb, $jp)"),
		qq{$ja alice succeeded "alice",$jb bob failed,$jp postgres succeeded "postgres"},
		'write jobs [id deferred_by status result]');
	like(sql($node, "SELECT error FROM procq.jobs WHERE id = $jb"),
		qr/^\Qpermission denied for table alice_table (SQLSTATE 42501)\E/,
		"error of bob's write job");
	is(sql($node, q{SELECT string_agg(job_id || ' ' || who || ' ' || what, ',' ORDER BY job_id) FROM alice_table}),
		"$ja alice by alice,$jp postgres by postgres", 'alice_table');
};

# --- Only an administrator of handlers registers them.
subtest 'a role with EXECUTE on every function but without the administrator grants cannot register a handler (42501)' => sub {
	expect_sqlstate($node, '42501', 'carol registers a handler',
		q{SELECT procq.register_handler('carols_task', 'sql', 'SELECT 1')}, user => 'carol');
	is(sql($node, q{SELECT count(*) FROM procq.handlers WHERE task = 'carols_task'}),
		0, "carol's handler is not stored");
};

# --- Shell handlers are for superusers; handlers belong to their registrar.
subtest 'a non-superuser cannot register a shell handler (42501)' => sub {
	expect_sqlstate($node, '42501', 'bob registers a shell handler',
		q{SELECT procq.register_handler('bobs_shell', 'shell', '/bin/true')}, user => 'bob');
	is(sql($node, q{SELECT count(*) FROM procq.handlers WHERE task = 'bobs_shell'}),
		0, "bob's shell handler is not stored");
};
subtest "bob and alice can neither replace nor unregister the superuser's handler (42501)" => sub {
	for my $who ('bob', 'alice')
	{
		expect_sqlstate($node, '42501', "$who replaces the superuser's handler",
			"SELECT procq.register_handler('write', 'sql', 'ALTER ROLE $who SUPERUSER')", user => $who);
		expect_sqlstate($node, '42501', "$who unregisters the superuser's handler",
			q{SELECT procq.unregister_handler('write')}, user => $who);
	}
	like(sql($node, q{SELECT registered_by || ' ' || command FROM procq.handlers WHERE task = 'write'}),
		qr/^\Qpostgres INSERT INTO public.alice_table\E/, "handler 'write' is unchanged");
};

# --- bob's handler runs for bob, but not for alice: bob may not act as alice
# (alice could write shared_log herself; the handler is what is refused).
subtest "bob's handler never runs alice's job (bob may not act as alice): it stays todo for external workers, with no effect" => sub {
	sql($node, q{SELECT procq.register_handler('bobs_task', 'sql',
    'INSERT INTO public.shared_log (job_id) VALUES ($2) RETURNING who')}, user => 'bob');
	my $bj = sql($node, q{SELECT procq.defer('bobs_task')}, user => 'bob');
	my $aj = sql($node, q{SELECT procq.defer('bobs_task')}, user => 'alice');
	wait_final($node, "bob's job of his handler", $bj);
	sleep 1;    # several polls: the workers had every chance to take alice's job
	is( sql($node, "SELECT string_agg(concat_ws(' ', deferred_by, status, attempts, result), ',' ORDER BY id) FROM procq.jobs WHERE id IN ($bj, $aj)"),
		'bob succeeded 1 "bob",alice todo 0',
		"jobs of bob's handler [deferred_by status attempts result]");
	is(sql($node, q{SELECT string_agg(job_id || ' ' || who, ',') FROM shared_log}),
		"$bj bob", "shared_log has only bob's job");
};

# --- alice's handlers cannot escalate to the worker's superuser session.
subtest "SET ROLE, SET SESSION AUTHORIZATION, set_config('role'), RESET ROLE, ALTER ROLE, pg_read_file and COPY TO PROGRAM fail with 42501 in alice's jobs" => sub {
	sql($node, q{
CREATE FUNCTION alice.escalate(job bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    SET ROLE postgres;
    INSERT INTO public.su_only (job_id) VALUES (job);
    RETURN current_user;
END $$;
SELECT procq.register_handler('esc_set_role', 'sql', 'SET ROLE postgres');
SELECT procq.register_handler('esc_session', 'sql', 'SET SESSION AUTHORIZATION postgres');
SELECT procq.register_handler('esc_set_config', 'sql',
    $$SELECT set_config('role', 'postgres', false), current_user$$);
SELECT procq.register_handler('esc_reset_role', 'sql', 'RESET ROLE');
SELECT procq.register_handler('esc_function', 'sql', 'SELECT alice.escalate($2)');
SELECT procq.register_handler('esc_do', 'sql',
    $$DO 'BEGIN SET SESSION AUTHORIZATION postgres; INSERT INTO public.su_only (job_id) VALUES (0); END'$$);
SELECT procq.register_handler('esc_alter_role', 'sql', 'ALTER ROLE alice SUPERUSER');
SELECT procq.register_handler('esc_read_file', 'sql', $$SELECT pg_read_file('PG_VERSION')$$);
}
		  . q{SELECT procq.register_handler('esc_program', 'sql', $$COPY (SELECT 1) TO PROGRAM 'touch }
		  . $pwned . q{'$$);
SELECT procq.defer(t) FROM unnest(ARRAY['esc_set_role', 'esc_session', 'esc_set_config',
    'esc_reset_role', 'esc_function', 'esc_do', 'esc_alter_role', 'esc_read_file', 'esc_program']) t;
}, user => 'alice');
	wait_final($node, "alice's escalation jobs", q{SELECT id FROM procq.jobs WHERE task LIKE 'esc\_%'});
	is( sql($node, q{SELECT string_agg(task || ' ' || status, ',' ORDER BY task) FROM procq.jobs
         WHERE task LIKE 'esc\_%' AND NOT (status = 'failed' AND error LIKE '%(SQLSTATE 42501)%')}),
		'', 'no escalation job did other than fail with 42501');
	is(sql($node, q{SELECT count(*) FROM procq.jobs WHERE task LIKE 'esc\_%'}),
		9, '9 escalation jobs');
	is( sql($node, q{SELECT (SELECT count(*) FROM su_only) || ' ' || (SELECT rolsuper FROM pg_roles WHERE rolname = 'alice')}),
		'0 false', '[rows in su_only, alice is superuser]');
	ok(!-e $pwned, "COPY TO PROGRAM did not run for alice's job");
};

# --- Nor can a role forge who deferred a job or who registered a handler.
subtest 'alice can neither change jobs.deferred_by nor forge procq.handlers.registered_by (42501)' => sub {
	expect_sqlstate($node, '42501', 'alice changes deferred_by',
		"UPDATE procq.jobs SET deferred_by = 'postgres' WHERE id = $ja", user => 'alice');
	expect_sqlstate($node, '42501', 'alice inserts a handler',
		q{INSERT INTO procq.handlers (task, kind, command, registered_by) VALUES ('forged', 'sql', 'SELECT 1', 'postgres')},
		user => 'alice');
};

$node->stop;
done_testing();
