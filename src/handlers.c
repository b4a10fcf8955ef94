/*-------------------------------------------------------------------------
 *
 * handlers.c
 *	  procq.register_handler and procq.unregister_handler: which tasks the
 *	  background workers run, and how (a SQL statement or a program).
 *
 * Registering and removing handlers is an administrator's act: the
 * capability is INSERT, UPDATE and DELETE on procq.handlers (a DBA grants
 * it), which both functions require of their caller, so that EXECUTE on
 * every function (1.0's README advice) does not let an ordinary role squat
 * a task name.  The table's trigger (procq.handlers_check) applies the
 * same rules to direct DML: a handler's registered_by must be a role whose
 * privileges the current user has (so it cannot be forged; a superuser's
 * pg_dump restore passes), only a superuser may write a shell handler, a
 * sql handler's command is one statement, and replacing or removing a
 * handler needs the privileges of its registered_by.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "utils/lsyscache.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "args.h"
#include "shell.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_register_handler);
PG_FUNCTION_INFO_V1(procq_unregister_handler);
PG_FUNCTION_INFO_V1(procq_handlers_check);

/* What an administrator of handlers has on procq.handlers. */
#define HANDLER_ADMIN_PRIVS (ACL_INSERT | ACL_UPDATE | ACL_DELETE)

static PQStatement stmt_owner = PQ_STATEMENT(
	"SELECT registered_by FROM procq.handlers WHERE task = $1 FOR UPDATE",
	1, TEXTOID);

static PQStatement stmt_upsert = PQ_STATEMENT(
	"INSERT INTO procq.handlers (task, kind, command, timeout, registered_by)"
	" VALUES ($1, $2, $3, $4, $5) ON CONFLICT (task) DO UPDATE SET"
	" kind = EXCLUDED.kind, command = EXCLUDED.command,"
	" timeout = EXCLUDED.timeout, registered_by = EXCLUDED.registered_by,"
	" registered_at = EXCLUDED.registered_at"
	" WHERE pg_catalog.pg_has_role($5::oid, procq.handlers.registered_by::oid, 'USAGE')",
	5, TEXTOID, TEXTOID, TEXTOID, INTERVALOID, REGROLEOID);

static PQStatement stmt_delete = PQ_STATEMENT(
	"DELETE FROM procq.handlers WHERE task = $1",
	1, TEXTOID);

/*
 * require_handler_admin raises 42501 unless the current user may
 * administer handlers: INSERT, UPDATE and DELETE on procq.handlers.
 */
static void
require_handler_admin(void)
{
	Oid			relid = get_relname_relid("handlers", get_namespace_oid("procq", false));

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table procq.handlers does not exist")));
	if (pg_class_aclmask(relid, GetUserId(), HANDLER_ADMIN_PRIVS, ACLMASK_ALL) !=
		HANDLER_ADMIN_PRIVS)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to administer procq handlers"),
				 errdetail("Registering and removing handlers is an administrator's act."),
				 errhint("An administrator has INSERT, UPDATE and DELETE on procq.handlers: GRANT INSERT, UPDATE, DELETE ON procq.handlers TO %s.",
						 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
}

/*
 * require_registrant_privs raises 42501 unless the current user has the
 * privileges of role owner, the registrant of task's handler.
 */
static void
require_registrant_privs(const char *task, Oid owner)
{
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the handler of task \"%s\" belongs to role %s",
						task, GetUserNameFromId(owner, true)),
				 errhint("Only that role, or a role with its privileges, may change it.")));
}

/*
 * handler_exists_for_me says whether task has a handler, and raises an
 * error when it belongs to a role whose privileges the current role does
 * not have: only its owner (or a role acting for it) may change it.  The
 * handler's row stays locked until the end of the transaction, so that its
 * registrant cannot change before the caller writes it.
 */
static bool
handler_exists_for_me(text *task)
{
	Datum		v[1] = {PointerGetDatum(task)};
	bool		isnull;
	Oid			owner;

	if (pq_exec(&stmt_owner, v, NULL, 1) == 0)
		return false;
	owner = DatumGetObjectId(pq_get_attr(0, 1, &isnull));
	require_registrant_privs(text_to_cstring(task), owner);
	return true;
}

/*
 * check_command checks a handler's command for its kind: a sql handler's
 * must be exactly one statement, a shell handler's must split into words.
 */
static void
check_command(const char *kind, text *command)
{
	if (strcmp(kind, "sql") == 0)
	{
		List	   *stmts = pg_parse_query(text_to_cstring(command));

		if (list_length(stmts) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a sql handler's command must be exactly one statement"),
					 errdetail("It has %d.", list_length(stmts)),
					 errhint("Wrap several statements in a function and call it.")));
	}
	else
	{
		char		errbuf[256];
		char	  **argv = pq_shell_split(text_to_cstring(command), errbuf, sizeof(errbuf));

		if (argv == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid shell handler command: %s", errbuf)));
		free(argv);
	}
}

/*
 * check_handler_args checks every argument of register_handler before
 * anything is written.
 */
static void
check_handler_args(FunctionCallInfo fcinfo, text *task, const char *kind,
				   text *command)
{
	if (VARSIZE_ANY_EXHDR(task) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("task must not be empty")));
	pq_check_name_length(task, "task");
	if (strcmp(kind, "sql") != 0 && strcmp(kind, "shell") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("handler kind must be sql or shell, not \"%s\"", kind)));
	if (strcmp(kind, "shell") == 0 && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers can register shell handlers"),
				 errdetail("A shell handler runs programs as the server's operating system user.")));
	check_command(kind, command);
	if (!PG_ARGISNULL(3))
	{
		Interval   *timeout = PG_GETARG_INTERVAL_P(3);

		if (timeout->month != 0 || timeout->day != 0 || timeout->time <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timeout must be a positive interval of hours, minutes or seconds")));
	}
}

/*
 * procq.register_handler(task, kind, command, timeout) returns void
 *
 * Lets the background workers run jobs of task.  A sql handler's command
 * must be one statement; a shell handler is for superusers only.  A
 * handler registered by another role may only be replaced by a role that
 * has that role's privileges.
 */
Datum
procq_register_handler(PG_FUNCTION_ARGS)
{
	text	   *task;
	char	   *kind;
	text	   *command;
	Datum		v[5];
	char		n[5] = {' ', ' ', ' ', ' ', ' '};

	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", i == 0 ? "task" : i == 1 ? "kind" : "command")));
	task = PG_GETARG_TEXT_PP(0);
	kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	command = PG_GETARG_TEXT_PP(2);
	require_handler_admin();
	check_handler_args(fcinfo, task, kind, command);

	pq_connect();
	(void) handler_exists_for_me(task);
	v[0] = PointerGetDatum(task);
	v[1] = CStringGetTextDatum(kind);
	v[2] = PointerGetDatum(command);
	v[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	n[3] = PG_ARGISNULL(3) ? 'n' : ' ';
	v[4] = ObjectIdGetDatum(GetUserId());

	/*
	 * The check above locked an existing handler, but a handler another
	 * administrator's uncommitted INSERT is adding was invisible to it: the
	 * upsert then waits for that INSERT and, once it has committed, takes the
	 * update branch, which checks the registrant itself.  No row changed
	 * means the committed handler is not ours: look again to say whose.
	 */
	if (pq_exec(&stmt_upsert, v, n, 0) == 0)
	{
		(void) handler_exists_for_me(task);
		elog(ERROR, "handler of task \"%s\" was neither inserted nor updated",
			 text_to_cstring(task));
	}
	pq_finish();

	PG_RETURN_VOID();
}

/*
 * procq.unregister_handler(task) returns boolean
 *
 * Removes a task's handler; its jobs stay for external workers.
 */
Datum
procq_unregister_handler(PG_FUNCTION_ARGS)
{
	text	   *task;
	Datum		v[1];
	bool		removed = false;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("task must not be null")));
	task = PG_GETARG_TEXT_PP(0);
	require_handler_admin();

	pq_connect();
	v[0] = PointerGetDatum(task);
	if (handler_exists_for_me(task))
		removed = pq_exec(&stmt_delete, v, NULL, 0) == 1;
	pq_finish();

	PG_RETURN_BOOL(removed);
}

/*
 * procq.handlers_check() returns trigger
 *
 * BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW on procq.handlers: the
 * rules of register_handler for direct DML, checked against the current
 * user (for register_handler's own upsert, which runs as the table's
 * owner, that is the owner; the function has checked its caller first).
 * The old row's registrant must be one whose privileges the current user
 * has (replacing, removing); so must the new row's (no forged
 * registered_by); a shell handler needs a superuser; a sql handler's
 * command is exactly one statement.
 */
Datum
procq_handlers_check(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	newtup = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "procq.handlers_check must be a BEFORE ROW trigger");
	desc = RelationGetDescr(trigdata->tg_relation);

	if (!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		HeapTuple	old = trigdata->tg_trigtuple;
		bool		isnull;
		char	   *task = TextDatumGetCString(heap_getattr(old, SPI_fnumber(desc, "task"), desc, &isnull));
		Datum		owner = heap_getattr(old, SPI_fnumber(desc, "registered_by"), desc, &isnull);

		if (!isnull)
			require_registrant_privs(task, DatumGetObjectId(owner));
	}
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		newtup = trigdata->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		newtup = trigdata->tg_newtuple;

	if (newtup != NULL)
	{
		bool		isnull;
		Datum		owner;
		Datum		kind;
		Datum		command;
		char	   *kindstr;

		owner = heap_getattr(newtup, SPI_fnumber(desc, "registered_by"), desc, &isnull);
		if (!isnull && !has_privs_of_role(GetUserId(), DatumGetObjectId(owner)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("a handler cannot be registered in the name of role %s",
							GetUserNameFromId(DatumGetObjectId(owner), true)),
					 errdetail("registered_by must be a role whose privileges the current user has."),
					 errhint("Use procq.register_handler, which records who registered the handler.")));
		kind = heap_getattr(newtup, SPI_fnumber(desc, "kind"), desc, &isnull);
		if (isnull)
			return PointerGetDatum(newtup);		/* NOT NULL says so */
		kindstr = TextDatumGetCString(kind);
		if (strcmp(kindstr, "shell") == 0 && !superuser())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("only superusers can register shell handlers"),
					 errdetail("A shell handler runs programs as the server's operating system user.")));
		command = heap_getattr(newtup, SPI_fnumber(desc, "command"), desc, &isnull);
		if (!isnull && strcmp(kindstr, "sql") == 0)
			check_command(kindstr, DatumGetTextPP(command));
		return PointerGetDatum(newtup);
	}
	return PointerGetDatum(trigdata->tg_trigtuple);
}
