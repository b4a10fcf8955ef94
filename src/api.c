/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The SQL API of procq: defer, fetch_job, finish_job, retry_job,
 *	  cancel_job, heartbeat, recover_stalled, parent_results.
 *
 * These functions validate their input, then change procq.jobs with the
 * internal statements of procq.c.  What a change of status means for other
 * jobs (releasing children, cancelling descendants, moving a lock queue
 * along) is done by the status trigger in deps.c, so that it happens the
 * same way whether the API or a DBA's UPDATE changed the status.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "procq.h"

PG_FUNCTION_INFO_V1(procq_defer);
PG_FUNCTION_INFO_V1(procq_fetch_job);
PG_FUNCTION_INFO_V1(procq_finish_job);
PG_FUNCTION_INFO_V1(procq_retry_job);
PG_FUNCTION_INFO_V1(procq_cancel_job);
PG_FUNCTION_INFO_V1(procq_heartbeat);
PG_FUNCTION_INFO_V1(procq_recover_stalled);
PG_FUNCTION_INFO_V1(procq_parent_results);

/*
 * require_arg raises an error when argument argno of the call is NULL.
 */
static void
require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/*
 * job_not_found reports that a job id names no job.
 */
static void
job_not_found(int64 job_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("job %lld does not exist", (long long) job_id)));
}

/*
 * job_status_of returns the status of a job as text, raising an error
 * when it does not exist.
 */
static char *
job_status_of(int64 job_id)
{
	Datum		v[1] = {Int64GetDatum(job_id)};

	if (pq_exec(PQ_JOB_EXISTS, v, NULL, 1) == 0)
		job_not_found(job_id);
	return pq_get_text(0, 1);
}

/*
 * lock_queue_of takes the advisory lock of the job's lock queue, if it
 * has a lock, before the caller locks the job's row: the status trigger
 * will move that queue along, and that lock must come first (pq_lock_key).
 * Raises an error when the job does not exist.
 */
static void
lock_queue_of(int64 job_id)
{
	Datum		v[1] = {Int64GetDatum(job_id)};
	char	   *lock;

	if (pq_exec(PQ_JOB_EXISTS, v, NULL, 1) == 0)
		job_not_found(job_id);
	lock = pq_get_text(0, 2);
	if (lock != NULL)
		pq_lock_key(lock);
}

/*
 * int8_array builds a bigint[] Datum from n ids.
 */
static Datum
int8_array(int64 *ids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	return PointerGetDatum(construct_array(elems, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * cmp_int64 orders int64 values for qsort.
 */
static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * pq_sort_unique_ids sorts ids in place and drops duplicates, so that a
 * parent named twice counts once; *n becomes the new length.
 */
int64 *
pq_sort_unique_ids(int64 *ids, int *n)
{
	int			out = 0;

	if (*n == 0)
		return ids;
	qsort(ids, *n, sizeof(int64), cmp_int64);
	for (int i = 0; i < *n; i++)
		if (out == 0 || ids[out - 1] != ids[i])
			ids[out++] = ids[i];
	*n = out;
	return ids;
}

/*
 * require_not_empty rejects an empty string for a text setting of a job.
 */
static void
require_not_empty(text *value, const char *name)
{
	if (value != NULL && VARSIZE_ANY_EXHDR(value) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", name),
				 errhint("Pass NULL for no %s.", name)));
}

/*
 * pq_validate_spec checks a job before anything is inserted, so that bad
 * input changes nothing.
 */
void
pq_validate_spec(PQJobSpec *spec)
{
	if (spec->task == NULL || VARSIZE_ANY_EXHDR(spec->task) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("task must not be empty")));
	if (spec->queue == NULL || VARSIZE_ANY_EXHDR(spec->queue) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue must not be empty")));
	if (spec->max_attempts < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts must be at least 1"),
				 errdetail("max_attempts was %d.", spec->max_attempts)));
	require_not_empty(spec->lock, "lock");
	require_not_empty(spec->queueing_lock, "queueing_lock");
}

/*
 * pq_defer_job inserts one validated job and its dependency rows, and
 * returns its id.  The caller has connected SPI.
 *
 * The parents are locked FOR SHARE, in id order, before their status is
 * read: a parent that is finishing at this moment holds a row lock that
 * conflicts, so we wait for its transaction and then see its final status,
 * and a parent that finishes after us waits until our dependency rows are
 * committed and will find them.  Either way the child is neither stranded
 * nor released early.
 */
int64
pq_defer_job(PQJobSpec *spec)
{
	int32		pending = 0;
	int64		failed_parent = 0;
	const char *failed_how = NULL;
	bool		lock_blocked = false;
	const char *status;
	char	   *error = NULL;
	Datum		parents_array = (Datum) 0;
	Datum		v[14];
	char		n[14];
	int64		job_id;
	bool		isnull;
	bool		ready;

	/* The lock queue's advisory lock comes before any row lock. */
	if (spec->lock != NULL)
		pq_lock_key(text_to_cstring(spec->lock));

	if (spec->nparents > 0)
	{
		int			nrows;
		int			row = 0;

		parents_array = int8_array(spec->parents, spec->nparents);
		v[0] = parents_array;
		nrows = pq_exec(PQ_LOCK_PARENTS, v, NULL, 0);

		/* rows and parents are both sorted by id */
		for (int i = 0; i < spec->nparents; i++)
		{
			int64		found_id = 0;
			char	   *pstatus;

			if (row < nrows)
				found_id = DatumGetInt64(pq_get_attr(row, 1, &isnull));
			if (row >= nrows || found_id != spec->parents[i])
				ereport(ERROR,
						(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
						 errmsg("job %lld named in depends_on does not exist",
								(long long) spec->parents[i])));
			pstatus = pq_get_text(row, 2);
			row++;
			if (strcmp(pstatus, "succeeded") == 0)
				continue;
			pending++;
			if (failed_parent == 0 && strcmp(pstatus, "failed") == 0)
				failed_how = "failed";
			else if (failed_parent == 0 && strcmp(pstatus, "cancelled") == 0)
				failed_how = "was cancelled";
			else
				continue;
			failed_parent = spec->parents[i];
		}
	}

	if (failed_parent != 0)
	{
		status = "cancelled";
		error = psprintf("parent job %lld %s", (long long) failed_parent,
						 failed_how);
	}
	else
	{
		status = "todo";
		if (spec->lock != NULL)
		{
			/* New ids are the highest: the job heads its lock queue iff it
			 * is empty. */
			v[0] = PointerGetDatum(spec->lock);
			pq_exec(PQ_LOCK_QUEUE_BUSY, v, NULL, 1);
			lock_blocked = DatumGetBool(pq_get_attr(0, 1, &isnull));
		}
	}

	if (spec->queueing_lock != NULL)
		pq_lock_queueing_key(text_to_cstring(spec->queueing_lock), false);

	memset(n, ' ', sizeof(n));
	v[0] = PointerGetDatum(spec->queue);
	v[1] = PointerGetDatum(spec->task);
	v[2] = PointerGetDatum(spec->args);
	v[3] = CStringGetTextDatum(status);
	v[4] = Int32GetDatum(spec->priority);
	v[5] = TimestampTzGetDatum(spec->scheduled_at);
	n[5] = spec->has_scheduled_at ? ' ' : 'n';
	v[6] = Int32GetDatum(spec->max_attempts);
	v[7] = PointerGetDatum(spec->lock);
	n[7] = spec->lock ? ' ' : 'n';
	v[8] = PointerGetDatum(spec->queueing_lock);
	n[8] = spec->queueing_lock ? ' ' : 'n';
	v[9] = Int32GetDatum(pending);
	v[10] = BoolGetDatum(lock_blocked);
	v[11] = Int64GetDatum(failed_parent);
	n[11] = failed_parent ? ' ' : 'n';
	v[12] = error ? CStringGetTextDatum(error) : (Datum) 0;
	n[12] = error ? ' ' : 'n';
	v[13] = ObjectIdGetDatum(GetUserId());

	if (pq_exec(PQ_INSERT_JOB, v, n, 0) == 0)
	{
		char	   *qlock = text_to_cstring(spec->queueing_lock);
		int64		holder = 0;

		v[0] = PointerGetDatum(spec->queueing_lock);
		if (pq_exec(PQ_QUEUEING_LOCK_HOLDER, v, NULL, 1) == 1)
			holder = DatumGetInt64(pq_get_attr(0, 1, &isnull));
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("a todo job with queueing_lock \"%s\" already exists", qlock),
				 holder ? errdetail("Job %lld holds that queueing_lock.", (long long) holder) : 0,
				 errhint("Only one job per queueing_lock may wait in todo; defer again once it has started.")));
	}
	job_id = DatumGetInt64(pq_get_attr(0, 1, &isnull));
	ready = DatumGetBool(pq_get_attr(0, 2, &isnull));

	if (spec->nparents > 0)
	{
		v[0] = Int64GetDatum(job_id);
		v[1] = parents_array;
		pq_exec(PQ_INSERT_DEPS, v, NULL, 0);
	}

	if (ready)
		pq_notify_ready(text_to_cstring(spec->queue));
	return job_id;
}

/*
 * procq.defer(task, args, queue, priority, scheduled_at, depends_on,
 *			   max_attempts, lock, queueing_lock) returns bigint
 *
 * Inserts a job and its dependency rows in one go: a worker can never see
 * the job without its dependencies.
 */
Datum
procq_defer(PG_FUNCTION_ARGS)
{
	PQJobSpec	spec = {0};
	int64		job_id;

	require_arg(fcinfo, 0, "task");
	require_arg(fcinfo, 2, "queue");
	require_arg(fcinfo, 3, "priority");
	require_arg(fcinfo, 6, "max_attempts");

	spec.task = PG_GETARG_TEXT_PP(0);
	spec.args = PG_ARGISNULL(1)
		? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")))
		: PG_GETARG_JSONB_P(1);
	spec.queue = PG_GETARG_TEXT_PP(2);
	spec.priority = PG_GETARG_INT32(3);
	spec.has_scheduled_at = !PG_ARGISNULL(4);
	spec.scheduled_at = spec.has_scheduled_at ? PG_GETARG_TIMESTAMPTZ(4) : 0;
	spec.max_attempts = PG_GETARG_INT32(6);
	spec.lock = PG_ARGISNULL(7) ? NULL : PG_GETARG_TEXT_PP(7);
	spec.queueing_lock = PG_ARGISNULL(8) ? NULL : PG_GETARG_TEXT_PP(8);

	if (!PG_ARGISNULL(5))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(5);
		Datum	   *elems;
		bool	   *nulls;
		int			nelems;

		deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &elems, &nulls, &nelems);
		spec.parents = palloc(sizeof(int64) * Max(nelems, 1));
		for (int i = 0; i < nelems; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("depends_on must not contain NULL"),
						 errdetail("Element %d of depends_on is NULL.", i + 1)));
			spec.parents[i] = DatumGetInt64(elems[i]);
		}
		spec.nparents = nelems;
		pq_sort_unique_ids(spec.parents, &spec.nparents);
	}

	pq_validate_spec(&spec);

	pq_connect();
	job_id = pq_defer_job(&spec);
	pq_finish();

	PG_RETURN_INT64(job_id);
}

/*
 * procq.fetch_job(queues text[], worker text) returns setof procq.jobs
 *
 * Returns zero or one job, now doing.  First makes up to ten jobs whose
 * scheduled time has come fetchable (so that the ready index never holds
 * jobs of the future), then takes the best ready job: highest priority,
 * then lowest id, skipping rows other fetchers have locked.
 *
 * With several queues, each is one probe of the per-queue ready index: the
 * queues are ordered by their best ready job, and the first queue that has
 * a job nobody else is taking gives it.  (A queue whose best job another
 * fetcher is taking at that instant gives its next best.)
 */
Datum
procq_fetch_job(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		v[3];
	char		n[3] = {' ', ' ', ' '};
	int			nqueues = -1;
	ArrayType  *queues = NULL;
	Datum	   *elems = NULL;
	bool		found = false;

	InitMaterializedSRF(fcinfo, 0);

	v[0] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	n[0] = PG_ARGISNULL(1) ? 'n' : ' ';
	v[1] = Int32GetDatum(pq_lease_duration);

	if (!PG_ARGISNULL(0))
	{
		bool	   *nulls;

		queues = PG_GETARG_ARRAYTYPE_P(0);
		deconstruct_array(queues, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &nqueues);
		for (int i = 0; i < nqueues; i++)
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("queues must not contain NULL"),
						 errhint("Pass NULL instead of an array to fetch from every queue.")));
	}

	/* An empty list of queues fetches nothing. */
	if (nqueues == 0)
		return (Datum) 0;

	pq_connect();

	{
		int			npromoted = pq_exec(PQ_PROMOTE_DUE, NULL, NULL, 0);
		bool		isnull;

		for (int i = 0; i < npromoted; i++)
			if (DatumGetBool(pq_get_attr(i, 2, &isnull)))
				pq_notify_ready(pq_get_text(i, 1));
	}

	if (queues == NULL)
		found = pq_exec(PQ_FETCH_ANY, v, n, 1) == 1;
	else if (nqueues == 1)
	{
		v[2] = elems[0];
		found = pq_exec(PQ_FETCH_ONE_QUEUE, v, n, 1) == 1;
	}
	else
	{
		Datum		q[1] = {PointerGetDatum(queues)};
		int			nready = pq_exec(PQ_QUEUES_BY_READINESS, q, NULL, 0);
		char	  **ready = palloc(sizeof(char *) * Max(nready, 1));

		for (int i = 0; i < nready; i++)
			ready[i] = pq_get_text(i, 1);
		for (int i = 0; i < nready && !found; i++)
		{
			v[2] = CStringGetTextDatum(ready[i]);
			found = pq_exec(PQ_FETCH_ONE_QUEUE, v, n, 1) == 1;
		}
	}
	if (found)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[0]);

	pq_finish();
	return (Datum) 0;
}

/*
 * retry_delay_seconds is the backoff before the attempt that follows
 * attempt number attempts: procq.retry_delay doubled per attempt made,
 * at most procq.retry_delay_max.
 */
static double
retry_delay_seconds(int attempts)
{
	double		delay = pq_retry_delay * pow(2.0, Max(attempts - 1, 0));

	return Min(delay, (double) pq_retry_delay_max);
}

/*
 * procq.finish_job(job_id, status, result, error) returns procq.job_status
 *
 * Ends a doing job.  'failed' goes back to todo, after a backoff, while the
 * job has attempts left (and no other job waits with its queueing_lock);
 * the status trigger then does what the new status means for dependents.
 */
Datum
procq_finish_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	char	   *status;
	char	   *current;
	int32		attempts;
	int32		max_attempts;
	char	   *error;
	const char *new_status;
	double		delay = 0;
	Datum		v[5];
	char		n[5] = {' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	Datum		ended;

	require_arg(fcinfo, 0, "job_id");
	require_arg(fcinfo, 1, "status");
	job_id = PG_GETARG_INT64(0);
	status = DatumGetCString(DirectFunctionCall1(enum_out, PG_GETARG_DATUM(1)));
	error = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));

	if (strcmp(status, "succeeded") != 0 && strcmp(status, "failed") != 0 &&
		strcmp(status, "cancelled") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a job cannot be finished with status %s", status),
				 errhint("Use succeeded, failed or cancelled.")));
	if (!PG_ARGISNULL(2) && strcmp(status, "succeeded") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("only a succeeded job can have a result"),
				 errhint("Describe a failure in error instead.")));

	pq_connect();

	lock_queue_of(job_id);
	v[0] = Int64GetDatum(job_id);
	if (pq_exec(PQ_LOCK_JOB, v, NULL, 1) == 0)
		job_not_found(job_id);
	current = pq_get_text(0, 1);
	attempts = DatumGetInt32(pq_get_attr(0, 2, &isnull));
	max_attempts = DatumGetInt32(pq_get_attr(0, 3, &isnull));
	if (strcmp(current, "doing") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld is not running", (long long) job_id),
				 errdetail("Its status is %s; only a doing job can be finished.",
						   current)));

	new_status = status;
	if (strcmp(status, "failed") == 0 && attempts < max_attempts)
	{
		char	   *qlock = pq_get_text(0, 4);
		int64		holder = 0;

		if (qlock != NULL)
		{
			pq_lock_queueing_key(qlock, false);
			v[0] = CStringGetTextDatum(qlock);
			if (pq_exec(PQ_QUEUEING_LOCK_HOLDER, v, NULL, 1) == 1)
				holder = DatumGetInt64(pq_get_attr(0, 1, &isnull));
		}
		if (holder != 0)
			error = psprintf("%s (not retried: job %lld already waits with queueing_lock \"%s\")",
							 error ? error : "failed", (long long) holder, qlock);
		else
		{
			new_status = "todo";
			delay = retry_delay_seconds(attempts);
		}
	}

	v[0] = Int64GetDatum(job_id);
	v[1] = CStringGetTextDatum(new_status);
	v[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	n[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	v[3] = error ? CStringGetTextDatum(error) : (Datum) 0;
	n[3] = error ? ' ' : 'n';
	v[4] = Float8GetDatum(delay);
	pq_exec(PQ_FINISH, v, n, 1);

	ended = DirectFunctionCall2(enum_in, CStringGetDatum(pq_get_text(0, 1)),
								ObjectIdGetDatum(get_fn_expr_rettype(fcinfo->flinfo)));
	pq_finish();
	PG_RETURN_DATUM(ended);
}

/*
 * procq.retry_job(job_id, scheduled_at) returns void
 *
 * Puts a failed or cancelled job back to todo with a fresh set of
 * attempts; the status trigger requeues the descendants that were
 * cancelled because of it.  Refused when a parent of the job itself failed
 * or was cancelled: that parent must be retried instead (the trigger
 * refuses a DBA's UPDATE in that case too).
 */
Datum
procq_retry_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	char	   *current;
	char	   *qlock;
	Datum		v[2];
	char		n[2] = {' ', ' '};
	bool		isnull;

	require_arg(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);

	pq_connect();

	lock_queue_of(job_id);
	v[0] = Int64GetDatum(job_id);
	if (pq_exec(PQ_LOCK_JOB, v, NULL, 1) == 0)
		job_not_found(job_id);
	current = pq_get_text(0, 1);
	qlock = pq_get_text(0, 4);
	if (strcmp(current, "failed") != 0 && strcmp(current, "cancelled") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld cannot be retried", (long long) job_id),
				 errdetail("Its status is %s; only failed or cancelled jobs can be retried.",
						   current)));
	v[0] = Int64GetDatum(job_id);
	if (pq_exec(PQ_FAILED_PARENT, v, NULL, 1) == 1)
	{
		int64		parent = DatumGetInt64(pq_get_attr(0, 1, &isnull));

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld cannot be retried while its parent job %lld is %s",
						(long long) job_id, (long long) parent, pq_get_text(0, 2)),
				 errhint("Retry job %lld instead: that requeues its cancelled descendants too.",
						 (long long) parent)));
	}
	if (qlock != NULL)
	{
		pq_lock_queueing_key(qlock, false);
		v[0] = CStringGetTextDatum(qlock);
		if (pq_exec(PQ_QUEUEING_LOCK_HOLDER, v, NULL, 1) == 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("a todo job with queueing_lock \"%s\" already exists", qlock),
					 errdetail("Job %lld holds that queueing_lock.",
							   (long long) DatumGetInt64(pq_get_attr(0, 1, &isnull)))));
	}

	v[0] = Int64GetDatum(job_id);
	v[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	n[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	pq_exec(PQ_RETRY, v, n, 1);

	pq_finish();
	PG_RETURN_VOID();
}

/*
 * procq.cancel_job(job_id, abort) returns boolean
 *
 * Cancels a todo job (the status trigger cancels its waiting descendants).
 * With abort, also stops a job that is running: a background worker
 * running it is told to stop it (kill a shell job's process group, cancel
 * a SQL job's statement) and ends it cancelled; a job an external worker
 * runs is marked cancelled at once, and its worker's finish_job will fail.
 * Returns false when there was nothing to cancel.
 */
Datum
procq_cancel_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	bool		abort;
	Datum		v[1];
	bool		cancelled;

	require_arg(fcinfo, 0, "job_id");
	require_arg(fcinfo, 1, "abort");
	job_id = PG_GETARG_INT64(0);
	abort = PG_GETARG_BOOL(1);

	/*
	 * A background worker runs it: with abort, the worker ends it; without,
	 * there is nothing to cancel (and its row stays locked until the
	 * worker's batch commits: do not wait for that).
	 */
	if (abort && pq_abort_running_job(job_id))
		PG_RETURN_BOOL(true);
	if (!abort && pq_worker_runs_job(job_id))
		PG_RETURN_BOOL(false);

	pq_connect();
	lock_queue_of(job_id);
	v[0] = Int64GetDatum(job_id);
	cancelled = pq_exec(PQ_CANCEL, v, NULL, 1) == 1;
	if (!cancelled && abort)
		cancelled = pq_exec(PQ_ABORT_DOING, v, NULL, 1) == 1;
	pq_finish();

	PG_RETURN_BOOL(cancelled);
}

/*
 * procq.heartbeat(job_id) returns timestamptz
 *
 * Extends the lease of a doing job by procq.lease_duration from now, and
 * returns when it will run out.
 */
Datum
procq_heartbeat(PG_FUNCTION_ARGS)
{
	int64		job_id;
	Datum		v[2];
	bool		isnull;
	TimestampTz expires;

	require_arg(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);

	pq_connect();
	v[0] = Int64GetDatum(job_id);
	v[1] = Int32GetDatum(pq_lease_duration);
	if (pq_exec(PQ_HEARTBEAT, v, NULL, 1) == 0)
	{
		char	   *current = job_status_of(job_id);

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld is not running", (long long) job_id),
				 errdetail("Its status is %s; only a doing job has a lease.", current)));
	}
	expires = DatumGetTimestampTz(pq_get_attr(0, 1, &isnull));
	pq_finish();

	PG_RETURN_TIMESTAMPTZ(expires);
}

/*
 * procq.recover_stalled() returns integer
 *
 * Doing jobs whose lease ran out (their worker died or hangs) go back to
 * todo, or to failed when they have no attempts left.  Jobs being finished
 * right now, and jobs whose lock queue another transaction is changing,
 * are skipped rather than waited for: the next call takes them.
 */
Datum
procq_recover_stalled(PG_FUNCTION_ARGS)
{
	int			recovered = 0;
	int			nstalled;
	int64	   *ids;
	char	  **locks;
	char	  **qlocks;

	pq_connect();

	nstalled = pq_exec(PQ_STALLED, NULL, NULL, 0);
	ids = palloc(sizeof(int64) * Max(nstalled, 1));
	locks = palloc(sizeof(char *) * Max(nstalled, 1));
	qlocks = palloc(sizeof(char *) * Max(nstalled, 1));
	for (int i = 0; i < nstalled; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(pq_get_attr(i, 1, &isnull));
		locks[i] = pq_get_text(i, 2);
		qlocks[i] = pq_get_text(i, 3);
	}

	for (int i = 0; i < nstalled; i++)
	{
		Datum		v[3] = {Int64GetDatum(ids[i]), (Datum) 0, (Datum) 0};

		if (locks[i] != NULL && !pq_try_lock_key(locks[i], true))
			continue;
		if (qlocks[i] != NULL && !pq_lock_queueing_key(qlocks[i], true))
			continue;
		recovered += pq_exec(PQ_RECOVER_STALLED, v, " nn", 1);
	}

	pq_finish();
	PG_RETURN_INT32(recovered);
}

/*
 * procq.parent_results(job_id) returns jsonb
 *
 * The results of the job's parents as one object keyed by parent id, so
 * that a child can use what its parents produced.
 */
Datum
procq_parent_results(PG_FUNCTION_ARGS)
{
	int64		job_id;
	Datum		v[1];
	bool		isnull;
	Datum		results;

	require_arg(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);

	pq_connect();
	(void) job_status_of(job_id);
	v[0] = Int64GetDatum(job_id);
	pq_exec(PQ_PARENT_RESULTS, v, NULL, 1);
	results = SPI_datumTransfer(pq_get_attr(0, 1, &isnull), false, -1);
	pq_finish();

	PG_RETURN_DATUM(results);
}
