/*-------------------------------------------------------------------------
 *
 * jobs.c
 *	  Looking up and locking single jobs: their status, lock, queue and
 *	  readiness, the parents that hold them back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "jobs.h"
#include "procq.h"
#include "spi_exec.h"

static PQStatement stmt_lookup = PQ_STATEMENT(
	"SELECT status::text, lock, queueing_lock, queue, " PQ_READY_COND
	", deferred_by FROM procq.jobs WHERE id = $1",
	1, INT8OID);

static PQStatement stmt_lock_for_share = PQ_STATEMENT(
	"SELECT id, status::text, deferred_by FROM procq.jobs WHERE id = ANY($1)"
	" ORDER BY id FOR SHARE",
	1, INT8ARRAYOID);

/* the same for one job: planned once, unlike a statement with an array */
static PQStatement stmt_lock_one_for_share = PQ_STATEMENT(
	"SELECT id, status::text, deferred_by FROM procq.jobs WHERE id = $1 FOR SHARE",
	1, INT8OID);

#define FAILED_PARENT(cond) \
	"SELECT p.id, p.status::text FROM procq.job_dependencies d" \
	" JOIN procq.jobs p ON p.id = d.depends_on" \
	" WHERE d.job_id = $1 AND p.status IN ('failed', 'cancelled')" cond \
	" ORDER BY p.id LIMIT 1"

/* only a 'success' job is blocked by a failed parent (procq 1.0: all are) */
static PQStatement stmt_failed_parent = PQ_STATEMENT(
	FAILED_PARENT(" AND (SELECT c.run_after FROM procq.jobs c WHERE c.id = $1)"
				  " = 'success'"),
	1, INT8OID);
static PQStatement stmt_failed_parent_1_0 = PQ_STATEMENT(
	FAILED_PARENT(""), 1, INT8OID);

/*
 * pq_job_lookup reads a job's status, lock, queueing_lock, queue,
 * readiness and deferred_by into *info, without locking it.  Returns false when there is
 * no such job.
 */
bool
pq_job_lookup(int64 job_id, PQJobInfo *info)
{
	Datum		v[1] = {Int64GetDatum(job_id)};
	bool		isnull;

	if (pq_exec(&stmt_lookup, v, NULL, 1) == 0)
		return false;
	info->status = pq_get_text(0, 1);
	info->lock = pq_get_text(0, 2);
	info->queueing_lock = pq_get_text(0, 3);
	info->queue = pq_get_text(0, 4);
	info->ready = DatumGetBool(pq_get_attr(0, 5, &isnull));
	info->deferred_by = DatumGetObjectId(pq_get_attr(0, 6, &isnull));
	return true;
}

/*
 * pq_job_not_found reports that a job id names no job.
 */
void
pq_job_not_found(int64 job_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("job %lld does not exist", (long long) job_id)));
}

/*
 * pq_job_status returns the status of a job as text, raising an error
 * when it does not exist.
 */
char *
pq_job_status(int64 job_id)
{
	PQJobInfo	info;

	if (!pq_job_lookup(job_id, &info))
		pq_job_not_found(job_id);
	return info.status;
}

/*
 * pq_lock_jobs_for_share locks the jobs whose ids are in the bigint[]
 * Datum ids FOR SHARE, in id order, and returns how many exist; the rows
 * (id, status, deferred_by), ordered by id, are in SPI_tuptable.
 *
 * Locking a job before reading its status means that a job changing status
 * right now is waited for and seen afterwards, and one that changes after
 * us waits until our transaction ends.
 */
int
pq_lock_jobs_for_share(Datum ids)
{
	ArrayType  *array = DatumGetArrayTypeP(ids);
	Datum		v[1] = {ids};

	if (ARR_NDIM(array) == 1 && ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array)) == 1 &&
		!ARR_HASNULL(array))
	{
		v[0] = Int64GetDatum(((int64 *) ARR_DATA_PTR(array))[0]);
		return pq_exec(&stmt_lock_one_for_share, v, NULL, 0);
	}
	return pq_exec(&stmt_lock_for_share, v, NULL, 0);
}

/*
 * pq_job_failed_parent finds the parent with the lowest id of a job that
 * failed or was cancelled, and its status, for a job with run_after
 * 'success' (only such a job cannot run while a parent is failed).
 * Returns false when none did, or the job has another run_after.
 */
bool
pq_job_failed_parent(int64 job_id, int64 *parent, char **status)
{
	Datum		v[1] = {Int64GetDatum(job_id)};
	bool		isnull;

	if (pq_exec(pq_schema_has_workflows() ? &stmt_failed_parent
				: &stmt_failed_parent_1_0, v, NULL, 1) == 0)
		return false;
	*parent = DatumGetInt64(pq_get_attr(0, 1, &isnull));
	*status = pq_get_text(0, 2);
	return true;
}

static PQStatement stmt_not_needed = PQ_STATEMENT(
	"SELECT 1 FROM procq.jobs WHERE id = $1 AND run_after = 'failure'"
	" AND pending_parents = 0 AND failed_parents = 0",
	1, INT8OID);

/*
 * pq_job_not_needed says whether a job is a 'failure' job whose parents
 * all succeeded: it can never run, and may not go back to todo.  Always
 * false on procq 1.0's table.
 */
bool
pq_job_not_needed(int64 job_id)
{
	Datum		v[1] = {Int64GetDatum(job_id)};

	if (!pq_schema_has_workflows())
		return false;
	return pq_exec(&stmt_not_needed, v, NULL, 1) > 0;
}

/*
 * pq_schema_has_workflows says whether procq.jobs has the columns of
 * workflows and conditions on parents (run_after, failed_parents,
 * workflow_id, step_key; procq 1.1).  This library also serves procq 1.0's
 * table until ALTER EXTENSION procq UPDATE: there, every job waits for its
 * parents' success and is a workflow of its own, and the statements that
 * name those columns must not run.  Two syscache lookups.
 */
bool
pq_schema_has_workflows(void)
{
	Oid			nsp = get_namespace_oid("procq", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("jobs", nsp) : InvalidOid;

	return OidIsValid(relid) && get_attnum(relid, "workflow_id") != InvalidAttrNumber;
}

/*
 * pq_run_after_from_text reads a run_after value ('success', 'completion'
 * or 'failure'); anything else is PQ_RUN_AFTER_INVALID.
 */
PQRunAfter
pq_run_after_from_text(text *value)
{
	const char *s = VARDATA_ANY(value);
	int			len = VARSIZE_ANY_EXHDR(value);

	if (len == 7 && memcmp(s, "success", 7) == 0)
		return PQ_RUN_AFTER_SUCCESS;
	if (len == 10 && memcmp(s, "completion", 10) == 0)
		return PQ_RUN_AFTER_COMPLETION;
	if (len == 7 && memcmp(s, "failure", 7) == 0)
		return PQ_RUN_AFTER_FAILURE;
	return PQ_RUN_AFTER_INVALID;
}

/*
 * pq_run_after_name is the value of procq.jobs.run_after for a condition.
 */
const char *
pq_run_after_name(PQRunAfter run_after)
{
	switch (run_after)
	{
		case PQ_RUN_AFTER_SUCCESS:
			return "success";
		case PQ_RUN_AFTER_COMPLETION:
			return "completion";
		case PQ_RUN_AFTER_FAILURE:
			return "failure";
		default:
			elog(ERROR, "procq: invalid run_after %d", (int) run_after);
	}
	return NULL;				/* keep the compiler quiet */
}

/*
 * pq_check_run_after refuses, with 22023, a run_after argument (of defer,
 * defer_jobs, or a step of defer_workflow: what) that is not one of the
 * three conditions, before anything is inserted.  Returns the condition.
 */
PQRunAfter
pq_check_run_after(text *value, const char *what)
{
	PQRunAfter	run_after;

	run_after = pq_run_after_from_text(value);
	if (run_after == PQ_RUN_AFTER_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be 'success', 'completion' or 'failure'", what),
				 errdetail("It was \"%s\".", text_to_cstring(value)),
				 errhint("'success' runs the job once all its parents succeeded, 'completion' once "
						 "they all ended however they ended, 'failure' once they all ended and "
						 "one of them did not succeed.")));
	return run_after;
}

/*
 * Arguments of procq.jobs_row_check(), in the order of its declaration.
 */
enum
{
	CHECK_TASK,
	CHECK_QUEUE,
	CHECK_STATUS,
	CHECK_ATTEMPTS,
	CHECK_MAX_ATTEMPTS,
	CHECK_PENDING_PARENTS,
	CHECK_LOCK_BLOCKED,
	CHECK_DELAYED,
	CHECK_STARTED_AT,
	CHECK_LEASE_EXPIRES_AT,
	CHECK_FINISHED_AT,
	CHECK_RESULT,
	CHECK_SCHEDULED_AT,
	CHECK_LOCK,
	CHECK_CANCELLED_BY,
	CHECK_QUEUEING_LOCK,		/* since issue 8; absent from the 15-argument
								 * declaration the 1.0 -> 1.1 update passes
								 * through */
	CHECK_RUN_AFTER,			/* since issue 9; absent from the 15- and
								 * 16-argument declarations */
	CHECK_FAILED_PARENTS
};

/*
 * invariant_broken reports that a row of procq.jobs breaks the invariant
 * name, with the message and SQLSTATE of a failed CHECK constraint of that
 * name (procq 1.0 had one constraint per invariant).
 */
static void
invariant_broken(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("new row for relation \"jobs\" violates check constraint \"%s\"", name),
			 errdetail("The CHECK constraint jobs_row_valid of procq.jobs checks invariant %s.", name)));
}

/*
 * name_too_long says whether argument argno (a text, NULL passes) has more
 * than PQ_NAME_MAX_CHARS characters; counting them is only needed when it
 * has more bytes than that.
 */
static bool
name_too_long(FunctionCallInfo fcinfo, int argno)
{
	text	   *value;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return false;
	value = PG_GETARG_TEXT_PP(argno);
	return VARSIZE_ANY_EXHDR(value) > PQ_NAME_MAX_CHARS &&
		pg_mbstrlen_with_len(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value)) > PQ_NAME_MAX_CHARS;
}

/*
 * procq.jobs_row_check(task, queue, status, ...): the invariants of a row
 * of procq.jobs, checked by its one CHECK constraint jobs_row_valid.
 *
 * PostgreSQL reads and compiles each CHECK constraint of a table again
 * for every INSERT and UPDATE statement; thirteen expressions cost more
 * than the single-row statements of the API themselves.  One call of this
 * function costs a fraction of that, and a CHECK constraint, unlike a
 * trigger, cannot be disabled: a DBA cannot write an impossible row.
 * Every invariant returns the error of its procq 1.0 constraint, checked
 * in the same order (by name); the length limits of task, queue, lock and
 * queueing_lock (PQ_NAME_MAX_CHARS, issue 8) are invariants of their own.
 * NULL in a NOT NULL column cannot reach us
 * (NOT NULL is checked first); as in SQL, it would pass.
 */
PG_FUNCTION_INFO_V1(procq_jobs_row_check);

/* The job_status values the row check compares with, per calling query. */
typedef struct StatusOids
{
	Oid			todo;
	Oid			doing;
	Oid			succeeded;
	Oid			cancelled;
} StatusOids;

/*
 * status_oids returns the OIDs of the job_status labels, looked up once per
 * query that calls the row check (kept in fn_extra), so that each row
 * compares OIDs instead of converting its status to text.
 */
static StatusOids *
status_oids(FunctionCallInfo fcinfo)
{
	StatusOids *oids = (StatusOids *) fcinfo->flinfo->fn_extra;

	if (oids == NULL)
	{
		Oid			type = get_fn_expr_argtype(fcinfo->flinfo, CHECK_STATUS);

		if (!OidIsValid(type))
			elog(ERROR, "procq.jobs_row_check: could not determine the type of status");
		oids = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(StatusOids));
		oids->todo = DatumGetObjectId(DirectFunctionCall2(enum_in, CStringGetDatum("todo"),
														  ObjectIdGetDatum(type)));
		oids->doing = DatumGetObjectId(DirectFunctionCall2(enum_in, CStringGetDatum("doing"),
														   ObjectIdGetDatum(type)));
		oids->succeeded = DatumGetObjectId(DirectFunctionCall2(enum_in, CStringGetDatum("succeeded"),
															   ObjectIdGetDatum(type)));
		oids->cancelled = DatumGetObjectId(DirectFunctionCall2(enum_in, CStringGetDatum("cancelled"),
															   ObjectIdGetDatum(type)));
		fcinfo->flinfo->fn_extra = oids;
	}
	return oids;
}

Datum
procq_jobs_row_check(PG_FUNCTION_ARGS)
{
	StatusOids *oids;
	Oid			status;
	bool		todo;
	bool		doing;
	bool		final;
	int32		attempts;
	int32		max_attempts;

	/*
	 * The length limits come with the 16-argument declaration; the
	 * 1.0 -> 1.1 update validates the table with the 15-argument one first,
	 * and checks the lengths itself before it declares this one.
	 */
	bool		names_checked = PG_NARGS() > CHECK_QUEUEING_LOCK;

	/*
	 * Conditions on parents (issue 9) come with the 18-argument declaration.
	 * A job that waits for its parents' completion or for a failure among
	 * them counts the parents that are not final; it keeps running when a
	 * parent it had waited for is retried (and counted again) meanwhile.
	 */
	bool		conditions_checked = PG_NARGS() > CHECK_FAILED_PARENTS;
	bool		after_success = true;
	PQRunAfter	run_after = PQ_RUN_AFTER_SUCCESS;

	for (int i = CHECK_TASK; i <= CHECK_DELAYED; i++)
		if (PG_ARGISNULL(i))
			PG_RETURN_BOOL(true);

	oids = status_oids(fcinfo);
	status = PG_GETARG_OID(CHECK_STATUS);
	todo = status == oids->todo;
	doing = status == oids->doing;
	final = !todo && !doing;
	attempts = PG_GETARG_INT32(CHECK_ATTEMPTS);
	max_attempts = PG_GETARG_INT32(CHECK_MAX_ATTEMPTS);
	if (conditions_checked && !PG_ARGISNULL(CHECK_RUN_AFTER))
	{
		run_after = pq_run_after_from_text(PG_GETARG_TEXT_PP(CHECK_RUN_AFTER));
		after_success = run_after == PQ_RUN_AFTER_SUCCESS;
	}

	if (attempts < 0 || attempts > max_attempts)
		invariant_broken("jobs_attempts_in_range");
	if (!PG_ARGISNULL(CHECK_CANCELLED_BY) && status != oids->cancelled)
		invariant_broken("jobs_cancelled_by_only_when_cancelled");
	if (PG_GETARG_BOOL(CHECK_DELAYED) && !(todo && !PG_ARGISNULL(CHECK_SCHEDULED_AT)))
		invariant_broken("jobs_delayed_needs_schedule");
	if (doing && !((PG_GETARG_INT32(CHECK_PENDING_PARENTS) == 0 || !after_success) &&
				   !PG_GETARG_BOOL(CHECK_LOCK_BLOCKED) && attempts >= 1 &&
				   !PG_ARGISNULL(CHECK_STARTED_AT) &&
				   !PG_ARGISNULL(CHECK_LEASE_EXPIRES_AT)))
		invariant_broken("jobs_doing_is_runnable");
	if (conditions_checked && !PG_ARGISNULL(CHECK_FAILED_PARENTS) &&
		PG_GETARG_INT32(CHECK_FAILED_PARENTS) < 0)
		invariant_broken("jobs_failed_parents_not_negative");
	if (final != !PG_ARGISNULL(CHECK_FINISHED_AT))
		invariant_broken("jobs_finished_iff_final");
	if (!PG_ARGISNULL(CHECK_LEASE_EXPIRES_AT) && !doing)
		invariant_broken("jobs_lease_only_when_doing");
	if (PG_GETARG_BOOL(CHECK_LOCK_BLOCKED) && !(todo && !PG_ARGISNULL(CHECK_LOCK)))
		invariant_broken("jobs_lock_blocked_needs_lock");
	if (names_checked && name_too_long(fcinfo, CHECK_LOCK))
		invariant_broken("jobs_lock_length");
	if (max_attempts < 1)
		invariant_broken("jobs_max_attempts_positive");
	if (PG_GETARG_INT32(CHECK_PENDING_PARENTS) < 0)
		invariant_broken("jobs_pending_parents_not_negative");
	if (names_checked && name_too_long(fcinfo, CHECK_QUEUE))
		invariant_broken("jobs_queue_length");
	if (VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(CHECK_QUEUE)) == 0)
		invariant_broken("jobs_queue_not_empty");
	if (names_checked && name_too_long(fcinfo, CHECK_QUEUEING_LOCK))
		invariant_broken("jobs_queueing_lock_length");
	if (!PG_ARGISNULL(CHECK_RESULT) && status != oids->succeeded)
		invariant_broken("jobs_result_only_on_success");
	if (run_after == PQ_RUN_AFTER_INVALID)
		invariant_broken("jobs_run_after_valid");
	if (names_checked && name_too_long(fcinfo, CHECK_TASK))
		invariant_broken("jobs_task_length");
	if (VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(CHECK_TASK)) == 0)
		invariant_broken("jobs_task_not_empty");
	if (todo && attempts >= max_attempts)
		invariant_broken("jobs_todo_has_attempts_left");

	PG_RETURN_BOOL(true);
}
