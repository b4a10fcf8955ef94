/*-------------------------------------------------------------------------
 *
 * spi_exec.c
 *	  The executor of procq's internal statements.
 *
 * Every statement procq runs on its own tables goes through pq_exec(),
 * which
 *
 *	- prepares it on first use and keeps the plan (see spi_exec.h),
 *	- runs it as the owner of procq.jobs, so that application roles need
 *	  EXECUTE on the API functions but no privileges on the tables,
 *	- with search_path pinned to pg_catalog, pg_temp, so that a statement
 *	  that runs as the owner (often a superuser) never resolves a name
 *	  through a schema someone else can create in, and
 *	- gives it a fresh snapshot, so that the bookkeeping sees rows that
 *	  concurrent transactions committed while we waited for a row lock (in
 *	  READ COMMITTED that is what SPI would do anyway; in REPEATABLE READ
 *	  the transaction snapshot would be stale, and the bookkeeping must
 *	  never act on a stale view).  There, PostgreSQL may still refuse a
 *	  change with a serialization failure, which the caller retries.
 *
 * Global state: pq_owner, the owner found by the last pq_connect().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "spi_exec.h"

/* The search_path of every internal statement, as the install script pins. */
#define PQ_SEARCH_PATH "pg_catalog, pg_temp"

/*
 * Owner of procq.jobs, looked up by pq_connect() for the API call, trigger
 * or worker transaction in progress; pq_exec() runs statements as this role.
 */
static Oid	pq_owner = InvalidOid;

/*
 * connect_and_find_owner opens an SPI connection, finds the role internal
 * statements run as (the owner of procq.jobs) and returns procq.jobs.
 */
static Oid
connect_and_find_owner(void)
{
	Oid			nspid;
	Oid			relid;
	HeapTuple	tuple;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "procq: SPI_connect failed");

	nspid = get_namespace_oid("procq", false);
	relid = get_relname_relid("jobs", nspid);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table procq.jobs does not exist"),
				 errhint("Reinstall the extension with DROP EXTENSION procq; CREATE EXTENSION procq;")));

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	pq_owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return relid;
}

/*
 * pq_connect opens an SPI connection for an API function or trigger, and
 * finds the role its internal statements run as.  These are members of
 * the extension, in its schema: "procq" names that schema.
 */
void
pq_connect(void)
{
	(void) connect_and_find_owner();
}

/*
 * pq_installed says whether procq.jobs, found by name, is the extension's
 * own table (in a transaction).  A background worker, which runs as a
 * superuser and runs handlers as the roles the jobs name, must not take
 * a look-alike for it: a role that may create schemas in the database can
 * create a schema procq with tables of procq's shape before the extension
 * is installed, or after it was dropped.
 */
bool
pq_installed(void)
{
	Oid			extid = get_extension_oid("procq", true);
	Oid			nspid = get_namespace_oid("procq", true);
	Oid			relid;

	if (!OidIsValid(extid) || !OidIsValid(nspid))
		return false;
	relid = get_relname_relid("jobs", nspid);
	return OidIsValid(relid) &&
		getExtensionOfObject(RelationRelationId, relid) == extid;
}

/*
 * pq_connect_worker is pq_connect for a background worker's transaction:
 * it also makes sure that procq.jobs is the extension's (pq_installed),
 * in the transaction that then uses it.
 */
void
pq_connect_worker(void)
{
	Oid			relid = connect_and_find_owner();

	if (getExtensionOfObject(RelationRelationId, relid) != get_extension_oid("procq", true))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("procq.jobs is not the table of extension procq"),
				 errdetail("The procq workers run nothing in database \"%s\" until extension procq is installed there.",
						   get_database_name(MyDatabaseId))));
}

/*
 * pq_finish closes the SPI connection opened by pq_connect.
 */
void
pq_finish(void)
{
	SPI_finish();
}

/*
 * prepare returns the kept plan of an internal statement, preparing it on
 * first use.
 */
static SPIPlanPtr
prepare(PQStatement *stmt)
{
	SPIPlanPtr	plan;

	if (stmt->plan != NULL)
		return stmt->plan;

	plan = SPI_prepare_cursor(stmt->sql, stmt->nargs, stmt->argtypes,
							  stmt->cursor_options);
	if (plan == NULL)
		elog(ERROR, "procq: could not prepare statement \"%s\": %s",
			 stmt->sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "procq: could not keep the plan of statement \"%s\"", stmt->sql);
	stmt->plan = plan;
	return plan;
}

/*
 * modifies_table says whether a plan's statement is an INSERT, UPDATE or
 * DELETE (not a SELECT, even one with data-modifying WITH queries).
 */
static bool
modifies_table(SPIPlanPtr plan)
{
	ListCell   *lc;

	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		CachedPlanSource *source = (CachedPlanSource *) lfirst(lc);

		if (source->commandTag != CMDTAG_SELECT)
			return true;
	}
	return false;
}

/*
 * pq_exec runs an internal statement as the owner of procq's tables, with
 * a snapshot taken now, and returns the number of rows it processed; the
 * rows themselves are in SPI_tuptable.  count limits the rows (0: all) of a
 * SELECT; an INSERT, UPDATE or DELETE always runs to completion, since an
 * executor stopped after count rows of RETURNING would neither change the
 * remaining rows nor fire the statement's AFTER STATEMENT triggers (the
 * bookkeeping, src/triggers.c).
 *
 * If the statement fails, the error aborts the (sub)transaction, which
 * also restores the user id and the search_path we switched away from.
 */
int
pq_exec(PQStatement *stmt, Datum *values, const char *nulls, long count)
{
	SPIPlanPtr	plan;
	Oid			save_userid;
	int			save_sec_context;
	int			ret;
	int			gucnest = -1;

	Assert(OidIsValid(pq_owner));

	/*
	 * The API functions pin search_path already; the background workers
	 * call this directly.
	 */
	if (strcmp(namespace_search_path, PQ_SEARCH_PATH) != 0)
	{
		gucnest = NewGUCNestLevel();
		(void) set_config_option("search_path", PQ_SEARCH_PATH,
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	plan = prepare(stmt);
	if (count != 0 && modifies_table(plan))
		count = 0;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(pq_owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);

	ret = SPI_execute_snapshot(plan, values, nulls,
							   GetLatestSnapshot(), InvalidSnapshot,
							   false, true, count);

	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (gucnest >= 0)
		AtEOXact_GUC(true, gucnest);

	if (ret < 0)
		elog(ERROR, "procq: statement \"%s\" failed: %s",
			 stmt->sql, SPI_result_code_string(ret));
	return (int) SPI_processed;
}

/*
 * pq_get_attr returns column col (1-based) of row row of the last
 * statement's result.
 */
Datum
pq_get_attr(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
						 col, isnull);
}

/*
 * pq_get_text returns column col of row row of the last result as a C
 * string in the caller's memory context, or NULL for SQL NULL.
 */
char *
pq_get_text(int row, int col)
{
	bool		isnull;
	Datum		d = pq_get_attr(row, col, &isnull);

	if (isnull)
		return NULL;
	return TextDatumGetCString(d);
}
