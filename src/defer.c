/*-------------------------------------------------------------------------
 *
 * defer.c
 *	  procq.defer, and the insert of one job with its dependency rows that
 *	  defer_workflow uses for each step too.
 *
 * A job and its dependency rows are inserted in one transaction: a worker
 * can never see the job without its dependencies.  A job whose parent has
 * already failed or been cancelled is inserted cancelled.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "args.h"
#include "defer.h"
#include "jobs.h"
#include "locks.h"
#include "notify.h"
#include "procq.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_defer);

static PQStatement stmt_insert_job = PQ_STATEMENT(
	"INSERT INTO procq.jobs (queue, task, args, status, priority,"
	" scheduled_at, max_attempts, lock, queueing_lock, pending_parents,"
	" lock_blocked, delayed, cancelled_by, error, finished_at, deferred_by)"
	" VALUES ($1, $2, $3, $4::procq.job_status, $5, $6, $7, $8, $9, $10,"
	" $11 AND $4 = 'todo',"
	" $4 = 'todo' AND $6 IS NOT NULL AND $6 > statement_timestamp(),"
	" $12, $13, CASE WHEN $4 = 'todo' THEN NULL ELSE clock_timestamp() END,"
	" $14)"
	" ON CONFLICT (queueing_lock)"
	" WHERE status = 'todo' AND queueing_lock IS NOT NULL DO NOTHING"
	" RETURNING id, " PQ_READY_COND,
	14, TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT4OID, TIMESTAMPTZOID,
	INT4OID, TEXTOID, TEXTOID, INT4OID, BOOLOID, INT8OID, TEXTOID, REGROLEOID);

static PQStatement stmt_insert_deps = PQ_STATEMENT(
	"INSERT INTO procq.job_dependencies (job_id, depends_on)"
	" SELECT $1, p FROM unnest($2::bigint[]) AS p",
	2, INT8OID, INT8ARRAYOID);

/* What the parents of a job to insert say about it. */
typedef struct ParentCheck
{
	int32		pending;		/* parents not succeeded */
	int64		failed_parent;	/* first failed or cancelled parent, or 0 */
	const char *failed_how;		/* "failed" or "was cancelled" */
} ParentCheck;

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
 * check_parents locks the parents of a job to insert FOR SHARE, in id
 * order, and reads their status: a parent that is finishing at this moment
 * holds a row lock that conflicts, so we wait for its transaction and then
 * see its final status, and a parent that finishes after us waits until
 * our dependency rows are committed and will find them.  Either way the
 * child is neither stranded nor released early.  A parent that does not
 * exist is an error.
 */
static ParentCheck
check_parents(PQJobSpec *spec, Datum parents_array)
{
	ParentCheck check = {0};
	int			nrows = pq_lock_jobs_for_share(parents_array);
	int			row = 0;
	bool		isnull;

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
		check.pending++;
		if (check.failed_parent == 0 && strcmp(pstatus, "failed") == 0)
			check.failed_how = "failed";
		else if (check.failed_parent == 0 && strcmp(pstatus, "cancelled") == 0)
			check.failed_how = "was cancelled";
		else
			continue;
		check.failed_parent = spec->parents[i];
	}
	return check;
}

/*
 * queueing_lock_taken reports that another todo job holds the queueing
 * lock of a job that was about to be inserted.
 */
static void
queueing_lock_taken(text *queueing_lock)
{
	char	   *qlock = text_to_cstring(queueing_lock);
	int64		holder = pq_queueing_lock_holder(qlock);

	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("a todo job with queueing_lock \"%s\" already exists", qlock),
			 holder ? errdetail("Job %lld holds that queueing_lock.", (long long) holder) : 0,
			 errhint("Only one job per queueing_lock may wait in todo; defer again once it has started.")));
}

/*
 * pq_defer_job inserts one validated job and its dependency rows, and
 * returns its id.  The caller has connected SPI.
 */
int64
pq_defer_job(PQJobSpec *spec)
{
	ParentCheck parents = {0};
	bool		lock_blocked = false;
	const char *status = "todo";
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
		parents_array = pq_int8_array(spec->parents, spec->nparents);
		parents = check_parents(spec, parents_array);
	}

	if (parents.failed_parent != 0)
	{
		status = "cancelled";
		error = psprintf("parent job %lld %s", (long long) parents.failed_parent,
						 parents.failed_how);
	}
	else if (spec->lock != NULL)
		lock_blocked = pq_lock_queue_busy(spec->lock);

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
	v[9] = Int32GetDatum(parents.pending);
	v[10] = BoolGetDatum(lock_blocked);
	v[11] = Int64GetDatum(parents.failed_parent);
	n[11] = parents.failed_parent ? ' ' : 'n';
	v[12] = error ? CStringGetTextDatum(error) : (Datum) 0;
	n[12] = error ? ' ' : 'n';
	v[13] = ObjectIdGetDatum(GetUserId());

	if (pq_exec(&stmt_insert_job, v, n, 0) == 0)
		queueing_lock_taken(spec->queueing_lock);
	job_id = DatumGetInt64(pq_get_attr(0, 1, &isnull));
	ready = DatumGetBool(pq_get_attr(0, 2, &isnull));

	if (spec->nparents > 0)
	{
		v[0] = Int64GetDatum(job_id);
		v[1] = parents_array;
		pq_exec(&stmt_insert_deps, v, NULL, 0);
	}

	if (ready)
		pq_notify_ready(text_to_cstring(spec->queue));
	return job_id;
}

/*
 * depends_on_arg reads the depends_on argument of procq.defer into spec:
 * sorted, without duplicates, no NULL elements.
 */
static void
depends_on_arg(ArrayType *arr, PQJobSpec *spec)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;

	deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &elems, &nulls, &nelems);
	spec->parents = palloc(sizeof(int64) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("depends_on must not contain NULL"),
					 errdetail("Element %d of depends_on is NULL.", i + 1)));
		spec->parents[i] = DatumGetInt64(elems[i]);
	}
	spec->nparents = nelems;
	pq_sort_unique_ids(spec->parents, &spec->nparents);
}

/*
 * procq.defer(task, args, queue, priority, scheduled_at, depends_on,
 *			   max_attempts, lock, queueing_lock) returns bigint
 *
 * Inserts a job and its dependency rows in one go, and returns its id.
 */
Datum
procq_defer(PG_FUNCTION_ARGS)
{
	PQJobSpec	spec = {0};
	int64		job_id;

	pq_require_arg(fcinfo, 0, "task");
	pq_require_arg(fcinfo, 2, "queue");
	pq_require_arg(fcinfo, 3, "priority");
	pq_require_arg(fcinfo, 6, "max_attempts");

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
		depends_on_arg(PG_GETARG_ARRAYTYPE_P(5), &spec);

	pq_validate_spec(&spec);

	pq_connect();
	job_id = pq_defer_job(&spec);
	pq_finish();

	PG_RETURN_INT64(job_id);
}
