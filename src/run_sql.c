/*-------------------------------------------------------------------------
 *
 * run_sql.c
 *	  Running SQL jobs in a background worker: up to procq.batch_size per
 *	  transaction.  Each is fetched, run in its own subtransaction as the
 *	  role that deferred it, and finished in the same transaction: a
 *	  handler's effects and its job's new status commit together, exactly
 *	  once, and a failing handler rolls back only its own effects.  A crash
 *	  loses the whole uncommitted batch, whose jobs are then still todo and
 *	  run again (crash.c keeps that from going on forever).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "crash.h"
#include "fetch.h"
#include "guc.h"
#include "lifecycle.h"
#include "run_sql.h"
#include "shmem.h"
#include "spi_exec.h"
#include "worker_xact.h"

/*
 * error_text renders an error for procq.jobs.error: message, SQLSTATE,
 * detail, hint and context.
 */
static char *
error_text(ErrorData *edata)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s (SQLSTATE %s)", edata->message,
					 unpack_sql_state(edata->sqlerrcode));
	if (edata->detail)
		appendStringInfo(&buf, "\nDETAIL: %s", edata->detail);
	if (edata->hint)
		appendStringInfo(&buf, "\nHINT: %s", edata->hint);
	if (edata->context)
		appendStringInfo(&buf, "\nCONTEXT: %s", edata->context);
	return buf.data;
}

/*
 * refuse_job finishes a fetched job without running it when it must not
 * run: it killed PQ_POISON_LIMIT workers (failed for good: a retry would
 * only kill more), the role that deferred it is gone, or the handler's
 * registrant may not act as that role.  Returns whether it did.
 */
static bool
refuse_job(PQFetchedJob *job)
{
	char	   *error = NULL;
	int			runs;

	if (pq_crash_is_poison(job->id, &runs))
	{
		pq_fail_for_good(job->id,
						 psprintf("not run again: its procq worker died %d times while running it",
								  runs));
		return true;
	}
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job->deferred_by)))
		error = psprintf("the role that deferred job %lld no longer exists",
						 (long long) job->id);
	else if (!has_privs_of_role(job->registered_by, job->deferred_by))
		error = psprintf("the handler of task \"%s\" was registered by role %s, "
						 "which may not act as role %s that deferred the job",
						 job->task, GetUserNameFromId(job->registered_by, true),
						 GetUserNameFromId(job->deferred_by, true));
	if (error == NULL)
		return false;
	pq_worker_finish(job->id, "failed", (Datum) 0, true, error);
	return true;
}

/*
 * first_value_as_jsonb returns the first column of the first row of the
 * handler statement's result as jsonb, copied into jobcxt, or sets
 * *isnull when there is none (no rows, no columns, SQL NULL, or a
 * pseudo-type such as void).
 */
static Datum
first_value_as_jsonb(MemoryContext jobcxt, bool *isnull)
{
	Oid			type;
	Datum		first;
	MemoryContext old;
	Datum		result;

	*isnull = true;
	if (SPI_tuptable == NULL || SPI_processed == 0 || SPI_tuptable->tupdesc->natts == 0)
		return (Datum) 0;

	type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
	first = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	if (get_typtype(type) == TYPTYPE_PSEUDO)
		*isnull = true;
	if (!*isnull && type != JSONBOID)
	{
		if (SPI_execute_with_args("SELECT pg_catalog.to_jsonb($1)", 1, &type,
								  &first, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "procq: could not convert the handler's result to jsonb");
		first = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	}
	if (*isnull)
		return (Datum) 0;
	old = MemoryContextSwitchTo(jobcxt);
	result = datumCopy(first, false, -1);
	MemoryContextSwitchTo(old);
	return result;
}

/*
 * run_handler runs the handler statement of a job, inside the job's
 * subtransaction: as the role that deferred the job, as a security-
 * restricted operation (it cannot switch roles), with the handler's
 * timeout as statement timeout, cancellable, and with any setting it
 * changes undone afterwards.  Then it finishes the job as succeeded, with
 * the first column of the first row as result: finishing belongs to the
 * job's subtransaction, so that if it fails (say the handler finished or
 * deleted its own job), the job's effects are rolled back with it and the
 * job is failed by the caller, instead of the error killing the whole
 * batch again and again.
 */
static void
run_handler(PQFetchedJob *job, MemoryContext jobcxt, Oid save_userid,
			int save_sec_context)
{
	int			gucnest = NewGUCNestLevel();
	Oid			argtypes[2] = {JSONBOID, INT8OID};
	Datum		values[2] = {job->args, Int64GetDatum(job->id)};
	Datum		result;
	bool		result_null;
	int			ret;

	SetUserIdAndSecContext(job->deferred_by,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (job->timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, (int) Min(job->timeout_ms, INT_MAX));
	RESUME_CANCEL_INTERRUPTS();

	ret = SPI_execute_with_args(job->command, 2, argtypes, values, NULL, false, 0);
	if (ret < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("handler statement could not run: %s",
						SPI_result_code_string(ret))));
	result = first_value_as_jsonb(jobcxt, &result_null);

	HOLD_CANCEL_INTERRUPTS();
	disable_timeout(STATEMENT_TIMEOUT, false);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	AtEOXact_GUC(false, gucnest);

	/* An abort that came after the statement still rolls the job back. */
	if (pq_slot_settle_abort(job->id))
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("aborted by procq.cancel_job")));
	pq_worker_finish(job->id, "succeeded", result, result_null, NULL);
}

/*
 * run_sql_job runs one SQL job in its own subtransaction (run_handler).
 * If anything fails, the subtransaction is rolled back, which undoes the
 * effects, the settings and the role switch, and the job is finished in
 * the enclosing transaction as failed (retried if attempts are left), or
 * as cancelled when it was aborted.
 */
static void
run_sql_job(PQFetchedJob *job, MemoryContext jobcxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Oid			save_userid;
	int			save_sec_context;
	char	   *volatile error = NULL;
	volatile bool aborted = false;

	/* A refused job is not run: no worker runs it that an abort could stop. */
	if (refuse_job(job))
	{
		pq_slot_job_done();
		return;
	}
	pq_slot_set_state(PQ_WORKER_SQL, job->id, job->task);

	(void) pq_crash_note_running(job->id);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);

	/* Only an abort of this job may cancel what follows. */
	if (!pq_slot_abort_requested(job->id))
		QueryCancelPending = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);

	PG_TRY();
	{
		run_handler(job, jobcxt, save_userid, save_sec_context);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		QueryCancelHoldoffCount = 0;
		HOLD_CANCEL_INTERRUPTS();
		disable_timeout(STATEMENT_TIMEOUT, false);

		MemoryContextSwitchTo(jobcxt);
		edata = CopyErrorData();
		FlushErrorState();

		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;

		aborted = pq_slot_settle_abort(job->id);
		error = aborted ? "aborted by procq.cancel_job" : error_text(edata);
	}
	PG_END_TRY();

	QueryCancelPending = false;
	if (error != NULL)
		pq_worker_finish(job->id, aborted ? "cancelled" : "failed", (Datum) 0, true, error);
	pq_slot_job_done();
}

/*
 * pq_run_sql_batch runs up to procq.batch_size SQL jobs in one
 * transaction.  Returns whether it found any.
 */
bool
pq_run_sql_batch(MemoryContext jobcxt)
{
	int			done = 0;

	/*
	 * Due scheduled jobs become fetchable in a transaction of their own:
	 * their rows must not stay locked for the length of a batch.
	 */
	pq_begin_work("promoting due jobs");
	pq_promote_due(false);
	pq_end_work();
	MemoryContextSwitchTo(jobcxt);

	pq_begin_xact("fetching SQL jobs");
	for (; done < pq_batch_size; done++)
	{
		PQFetchedJob job;
		bool		found;

		/* An SPI connection per job, so that a batch's memory stays flat. */
		MemoryContextReset(jobcxt);
		pq_connect();
		found = pq_fetch_handled_job("sql", pq_my_name, pq_lease_duration, &job, jobcxt);
		if (found)
			run_sql_job(&job, jobcxt);
		pq_finish();
		if (!found)
			break;
	}
	pq_end_xact();
	if (done > 0)
		pq_crash_clear();
	MemoryContextReset(jobcxt);
	return done > 0;
}
