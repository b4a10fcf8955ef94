/*-------------------------------------------------------------------------
 *
 * run_sql.c
 *	  Running SQL jobs in a background worker, a batch of up to
 *	  procq.batch_size per transaction, set-based:
 *
 *	- the batch is claimed in one statement (worker_jobs.c);
 *	- each job runs in its own subtransaction, as the role that deferred
 *	  it, from a plan of its handler's statement prepared once per handler
 *	  (and prepared again when the handler changes): a failing handler
 *	  rolls back only its own effects;
 *	- its session state is reset before the next job starts (reset_session);
 *	- the outcomes of the whole batch are recorded in one statement in the
 *	  batch's transaction, so a handler's effects and its job's new status
 *	  commit together, exactly once;
 *	- one SPI connection serves the whole batch, and crash accounting
 *	  (crash.c) writes its file once per batch.
 *
 * A crash loses the whole uncommitted batch, whose jobs are then still
 * todo and run again; crash.c keeps that from going on forever.
 *
 * Global state, in a worker process: the kept plans of the handlers it ran
 * (handler_plans), in their own memory context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "crash.h"
#include "fetch.h"
#include "guc.h"
#include "run_sql.h"
#include "shmem.h"
#include "spi_exec.h"
#include "worker_jobs.h"
#include "worker_xact.h"

/* The kept plan of a handler's statement, for the handler's version. */
typedef struct HandlerPlan
{
	char	   *task;
	char	   *command;
	TimestampTz registered_at;
	SPIPlanPtr	plan;
} HandlerPlan;

static MemoryContext plan_cxt = NULL;
static HandlerPlan *handler_plans = NULL;
static int	nhandler_plans = 0;
static int	handler_plans_cap = 0;

/*
 * handler_plan returns the kept plan of the job's handler statement,
 * preparing it when this worker has none for the handler's current version
 * (a handler registered again gets a new registered_at).  It runs in the
 * job's subtransaction, as the job's role: a statement that does not parse
 * fails its job.  Handlers are few: a linear search is enough.
 */
static SPIPlanPtr
handler_plan(PQWorkerJob *job)
{
	static Oid	argtypes[2] = {JSONBOID, INT8OID};
	HandlerPlan *hp = NULL;
	SPIPlanPtr	plan;

	for (int i = 0; i < nhandler_plans && hp == NULL; i++)
		if (strcmp(handler_plans[i].task, job->task) == 0)
			hp = &handler_plans[i];
	if (hp != NULL && hp->registered_at == job->registered_at &&
		strcmp(hp->command, job->command) == 0)
		return hp->plan;

	plan = SPI_prepare(job->command, 2, argtypes);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("handler statement could not be prepared: %s",
						SPI_result_code_string(SPI_result))));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "procq: could not keep the plan of the handler of task \"%s\"", job->task);

	if (plan_cxt == NULL)
		plan_cxt = AllocSetContextCreate(TopMemoryContext, "procq handler plans",
										 ALLOCSET_SMALL_SIZES);
	if (hp == NULL)
	{
		if (nhandler_plans == handler_plans_cap)
		{
			handler_plans_cap = Max(8, handler_plans_cap * 2);
			handler_plans = handler_plans
				? repalloc(handler_plans, sizeof(HandlerPlan) * handler_plans_cap)
				: MemoryContextAlloc(plan_cxt, sizeof(HandlerPlan) * handler_plans_cap);
		}
		hp = &handler_plans[nhandler_plans++];
		hp->task = MemoryContextStrdup(plan_cxt, job->task);
	}
	else
	{
		SPI_freeplan(hp->plan);
		pfree(hp->command);
	}
	hp->command = MemoryContextStrdup(plan_cxt, job->command);
	hp->registered_at = job->registered_at;
	hp->plan = plan;
	return plan;
}

/*
 * refuse_job decides that a claimed job must not run: the role that
 * deferred it is gone, or the handler's registrant may not act as that
 * role (the claim checks that too, but a role can change since).  Fills
 * in the job's outcome and returns true then.
 */
static bool
refuse_job(PQWorkerJob *job)
{
	char	   *error = NULL;

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
	job->status = "failed";
	job->error = error;
	return true;
}

/*
 * value_to_jsonb converts a value of type type to jsonb with to_jsonb,
 * called directly: its argument type comes from a call expression made up
 * for it, as the executor would pass it.  No statement is parsed.
 */
static Datum
value_to_jsonb(Datum value, Oid type)
{
	FmgrInfo	flinfo;
	FuncExpr   *call;

	fmgr_info(F_TO_JSONB, &flinfo);
	call = makeFuncExpr(F_TO_JSONB, JSONBOID,
						list_make1(makeNullConst(type, -1, InvalidOid)),
						InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	flinfo.fn_expr = (Node *) call;
	return FunctionCall1(&flinfo, value);
}

/*
 * first_value_as_jsonb returns the first column of the first row of the
 * handler statement's result as jsonb, copied into cxt, or sets *isnull
 * when there is none (no rows, no columns, SQL NULL, or a pseudo-type such
 * as void).  The value is a plain copy, never a toast pointer.
 */
static Datum
first_value_as_jsonb(MemoryContext cxt, bool *isnull)
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
	if (*isnull)
		return (Datum) 0;
	if (type != JSONBOID)
		first = value_to_jsonb(first, type);
	/*
	 * Detoasted here, in the job's subtransaction: a jsonb column comes as
	 * a toast pointer into its table, which a later job of the batch may
	 * truncate or drop before the outcomes are recorded.
	 */
	old = MemoryContextSwitchTo(cxt);
	result = PointerGetDatum(PG_DETOAST_DATUM_COPY(first));
	MemoryContextSwitchTo(old);
	return result;
}

/*
 * run_handler runs the handler statement of a job, inside the job's
 * subtransaction: as the role that deferred the job, as a security-
 * restricted operation (it cannot switch roles), with the handler's
 * timeout as statement timeout, cancellable, with the server's lock_timeout
 * (not the worker's procq.worker_lock_timeout, see worker_xact.c), and
 * with any setting it changes undone afterwards.  The job's outcome is succeeded, with the
 * first column of the first row as result (in cxt); it is recorded with
 * the batch's.
 */
static void
run_handler(PQWorkerJob *job, MemoryContext cxt, Oid save_userid,
			int save_sec_context)
{
	int			gucnest = NewGUCNestLevel();
	Datum		values[2] = {job->args, Int64GetDatum(job->id)};
	Datum		result;
	bool		result_null;
	int			ret;

	(void) set_config_option("lock_timeout", GetConfigOptionResetString("lock_timeout"),
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	SetUserIdAndSecContext(job->deferred_by,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (job->timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, (int) Min(job->timeout_ms, INT_MAX));
	RESUME_CANCEL_INTERRUPTS();

	ret = SPI_execute_plan(handler_plan(job), values, NULL, false, 0);
	if (ret < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("handler statement could not run: %s",
						SPI_result_code_string(ret))));
	result = first_value_as_jsonb(cxt, &result_null);
	SPI_freetuptable(SPI_tuptable);

	HOLD_CANCEL_INTERRUPTS();
	disable_timeout(STATEMENT_TIMEOUT, false);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	AtEOXact_GUC(false, gucnest);

	/* An abort that came after the statement still rolls the job back. */
	if (pq_slot_settle_abort(job->id))
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("aborted by procq.cancel_job")));
	job->status = "succeeded";
	job->has_result = !result_null;
	job->result = result;
}

/*
 * reset_session removes what a job may have left in the worker's session
 * and what a subtransaction does not undo, before the next job starts:
 * session advisory locks, prepared statements, temporary objects, sequence
 * state (lastval), open cursors (portals, as DISCARD ALL closes them: the
 * worker has none of its own open here, no query runs; an active portal
 * would be skipped anyway), and the constraint modes set by SET
 * CONSTRAINTS.  The settings are undone by run_handler (or the
 * subtransaction's abort).
 *
 * Constraint modes have no API to go back to their defaults within a
 * transaction: the after-trigger state is ended and begun again, as at a
 * transaction boundary.  That is safe here: no query runs (query depth
 * -1), no subtransaction is open, and no trigger event is pending (procq's
 * own triggers are immediate, and PostgreSQL refuses a deferred one queued
 * inside a security-restricted operation, that is by a handler).
 */
static void
reset_session(void)
{
	LockReleaseSession(USER_LOCKMETHOD);
	DropAllPreparedStatements();
	ResetTempTableNamespace();
	ResetSequenceCaches();
	/* cursors a handler opened (they outlive its subtransaction) */
	PortalHashTableDeleteAll();
	/* not inside run_alone's subtransaction: its transaction ends next */
	if (GetCurrentTransactionNestLevel() == 1)
	{
		AfterTriggerEndXact(true);
		AfterTriggerBeginXact();
	}
}

/*
 * abort_job_subxact is the common part of catching a job's error: it puts
 * back the cancel holdoff that errfinish reset (outside a handler, cancels
 * stay held), stops the job's statement timeout, copies the error into
 * batchcxt, and rolls back the job's subtransaction, returning to the
 * batch's memory context and resource owner.
 */
static ErrorData *
abort_job_subxact(MemoryContext batchcxt, ResourceOwner oldowner)
{
	ErrorData  *edata;

	QueryCancelHoldoffCount = 0;
	HOLD_CANCEL_INTERRUPTS();
	disable_timeout(STATEMENT_TIMEOUT, false);
	MemoryContextSwitchTo(batchcxt);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(batchcxt);
	CurrentResourceOwner = oldowner;
	return edata;
}

/*
 * run_sql_job runs one SQL job in its own subtransaction (run_handler).
 * If anything fails, the subtransaction is rolled back, which undoes the
 * effects, the settings and the role switch, and the job's outcome is
 * failed (retried if attempts are left), or cancelled when it was
 * aborted.  Temporary memory lives in jobcxt (reset by the caller),
 * the outcome in batchcxt.
 */
static void
run_sql_job(PQWorkerJob *job, MemoryContext jobcxt, MemoryContext batchcxt)
{
	ResourceOwner oldowner = CurrentResourceOwner;
	Oid			save_userid;
	int			save_sec_context;

	/* A refused job is not run: no worker runs it that an abort could stop. */
	MemoryContextSwitchTo(batchcxt);
	if (refuse_job(job))
	{
		pq_slot_job_done();
		return;
	}
	pq_slot_set_state(PQ_WORKER_SQL, job->id, job->task);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);

	/* Only an abort of this job may cancel what follows. */
	if (!pq_slot_abort_requested(job->id))
		QueryCancelPending = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(jobcxt);

	PG_TRY();
	{
		run_handler(job, batchcxt, save_userid, save_sec_context);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(jobcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata = abort_job_subxact(batchcxt, oldowner);
		bool		aborted;

		aborted = pq_slot_settle_abort(job->id);
		job->status = aborted ? "cancelled" : "failed";
		job->has_result = false;
		job->error = aborted ? "aborted by procq.cancel_job" : pq_error_text(edata);
		MemoryContextSwitchTo(jobcxt);
	}
	PG_END_TRY();

	QueryCancelPending = false;
	reset_session();
	pq_slot_job_done();
}

/*
 * run_alone runs a job that is alone in its batch because it is a suspect
 * (crash.c): its batch failed as a whole, or its worker died, last time.
 * The job and the recording of its outcome share a subtransaction, so
 * that when the outcome cannot be recorded, the job's effects are rolled
 * back and it is failed, saying so and why, instead of failing its batch
 * again.  If even that fails, the error goes up (recover_from_error), and
 * counts against the job.  A lock timeout of the recording is no reason to
 * fail the job: it goes up at once, and the batch runs again later.
 */
static void
run_alone(PQWorkerJob *job, MemoryContext jobcxt, MemoryContext batchcxt)
{
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		run_sql_job(job, jobcxt, batchcxt);
		MemoryContextSwitchTo(batchcxt);
		(void) pq_record_outcomes(job, 1);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(batchcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata = abort_job_subxact(batchcxt, oldowner);

		QueryCancelPending = false;
		reset_session();
		pq_slot_job_done();
		if (pq_is_lock_timeout(edata->sqlerrcode))
			ReThrowError(edata);

		job->status = "failed";
		job->has_result = false;
		job->error = psprintf("its outcome could not be recorded: %s", pq_error_text(edata));
		ereport(WARNING,
				(errmsg("procq worker %d could not record the outcome of SQL job %lld",
						pq_my_slot + 1, (long long) job->id),
				 errdetail_internal("%s", job->error)));
		(void) pq_record_outcomes(job, 1);
	}
	PG_END_TRY();
}

/*
 * pq_run_sql_batch claims up to procq.batch_size SQL jobs (one while the
 * slot's previous worker's death is not cleared up, see crash.c), runs
 * them and records their outcomes, in one transaction.  Returns whether it
 * found any.
 */
bool
pq_run_sql_batch(MemoryContext batchcxt)
{
	PQWorkerJob *jobs;
	int64	   *ids;
	int			n;
	int			nrun = 0;
	bool		alone;
	MemoryContext jobcxt;

	/*
	 * Due scheduled jobs become fetchable in a transaction of their own:
	 * their rows must not stay locked for the length of a batch.
	 */
	pq_begin_work("promoting due jobs");
	pq_promote_due(false);
	pq_end_work();

	pq_begin_work("running SQL jobs");
	alone = pq_crash_alone();
	n = pq_claim_jobs("sql", alone ? 1 : pq_batch_size, pq_lease_duration,
					  &jobs, batchcxt);
	if (n == 0)
	{
		pq_end_work();
		return false;
	}

	/* A job that was in the batch of PQ_POISON_LIMIT dead workers is failed. */
	ids = MemoryContextAlloc(batchcxt, sizeof(int64) * n);
	for (int i = 0; i < n; i++)
	{
		int			deaths = pq_crash_deaths(jobs[i].id);

		if (deaths >= PQ_POISON_LIMIT)
		{
			jobs[i].status = "failed";
			jobs[i].for_good = true;
			jobs[i].error = MemoryContextStrdup(batchcxt,
												psprintf("not run again: its procq worker died %d times while running it",
														 deaths));
		}
		else
			ids[nrun++] = jobs[i].id;
	}
	pq_crash_note_batch(ids, nrun);

	jobcxt = AllocSetContextCreate(batchcxt, "procq job", ALLOCSET_DEFAULT_SIZES);
	if (alone && jobs[0].status == NULL)
		run_alone(&jobs[0], jobcxt, batchcxt);
	else
	{
		for (int i = 0; i < n; i++)
		{
			if (jobs[i].status != NULL)
				continue;
			MemoryContextReset(jobcxt);
			run_sql_job(&jobs[i], jobcxt, batchcxt);
		}
		MemoryContextSwitchTo(batchcxt);
		(void) pq_record_outcomes(jobs, n);
	}
	MemoryContextSwitchTo(batchcxt);
	pq_end_work();
	pq_crash_batch_done();
	return true;
}
