/*-------------------------------------------------------------------------
 *
 * finish.c
 *	  procq.finish_jobs: ending many doing jobs at once, with finish_job's
 *	  meaning for each, in set-based statements.
 *
 * A batch is all or nothing.  Its lock queues' procq locks are taken
 * first (in lock order, as pq_lock_key requires), then its rows, in id
 * order, so that two batches sharing jobs or lock queues cannot deadlock;
 * then every job is checked (it exists and is doing) before anything
 * changes.  A failed job with attempts left goes back to todo after
 * finish_job's backoff, unless another todo job (or an earlier job of the
 * same batch going back to todo) holds its queueing_lock.  One UPDATE then
 * ends the whole batch; the status trigger does what each new status
 * means for the other jobs, as for finish_job.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "args.h"
#include "authz.h"
#include "finish.h"
#include "lifecycle.h"
#include "locks.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_finish_jobs);

static PQStatement stmt_lock_batch = PQ_STATEMENT(
	"SELECT id, status::text, attempts, max_attempts, queueing_lock, error,"
	" deferred_by"
	" FROM procq.jobs WHERE id = ANY ($1) ORDER BY id FOR UPDATE",
	1, INT8ARRAYOID);

static PQStatement stmt_queueing_holders = PQ_STATEMENT(
	"SELECT queueing_lock, id FROM procq.jobs"
	" WHERE queueing_lock = ANY ($1) AND status = 'todo'"
	" ORDER BY queueing_lock",
	1, TEXTARRAYOID);

static PQStatement stmt_finish_batch = PQ_STATEMENT(
	"UPDATE procq.jobs j SET status = u.status::procq.job_status,"
	" result = u.result, error = u.error, lease_expires_at = NULL,"
	" finished_at = CASE WHEN u.status = 'todo' THEN NULL"
	"  ELSE clock_timestamp() END,"
	" scheduled_at = CASE WHEN u.status = 'todo'"
	"  THEN clock_timestamp() + make_interval(secs => u.delay)"
	"  ELSE j.scheduled_at END,"
	" delayed = (u.status = 'todo' AND u.delay > 0)"
	" FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::text[],"
	"  $5::float8[]) AS u(id, status, result, error, delay)"
	" WHERE j.id = ANY ($1) AND j.id = u.id",
	5, INT8ARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID);

/* A job of the batch that may be retried, and its queueing lock. */
typedef struct Retryable
{
	const char *qlock;
	int			pos;			/* index in the batch */
} Retryable;

/* A todo job holding a queueing lock. */
typedef struct Holder
{
	char	   *qlock;
	int64		id;
} Holder;

/*
 * cmp_retryable orders Retryable entries by queueing lock, then batch
 * position.
 */
static int
cmp_retryable(const void *a, const void *b)
{
	const Retryable *x = (const Retryable *) a;
	const Retryable *y = (const Retryable *) b;
	int			c = strcmp(x->qlock, y->qlock);

	if (c != 0)
		return c;
	return (x->pos > y->pos) - (x->pos < y->pos);
}

/*
 * cmp_holder orders Holder entries by queueing lock.
 */
static int
cmp_holder(const void *a, const void *b)
{
	return strcmp(((const Holder *) a)->qlock, ((const Holder *) b)->qlock);
}

/* A job id and its position in job_ids. */
typedef struct IdPos
{
	int64		id;
	int			pos;
} IdPos;

/*
 * cmp_id_pos orders IdPos entries by id, then position.
 */
static int
cmp_id_pos(const void *a, const void *b)
{
	const IdPos *x = (const IdPos *) a;
	const IdPos *y = (const IdPos *) b;

	if (x->id != y->id)
		return (x->id > y->id) - (x->id < y->id);
	return (x->pos > y->pos) - (x->pos < y->pos);
}

/*
 * cmp_int64_key orders job ids for qsort and bsearch.
 */
static int
cmp_int64_key(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * decide_retries turns the failed jobs of the batch that have attempts
 * left and a queueing lock into todo jobs (ended = "todo"), except
 * those whose queueing lock another todo job holds, or an earlier job of
 * the batch that goes back to todo: those stay failed, and their error
 * says why, as finish_job's does.  cands are the failed jobs with
 * attempts left and a queueing lock.
 */
static void
decide_retries(PQFinishItem *jobs, Retryable *cands, int ncands)
{
	Datum	   *qlocks;
	Holder	   *holders;
	int			nholders;
	int			nq = 0;

	/* queueing locks in a fixed order, each once, as pq_lock_queueing_key wants */
	qsort(cands, ncands, sizeof(Retryable), cmp_retryable);
	qlocks = palloc(sizeof(Datum) * Max(ncands, 1));
	for (int i = 0; i < ncands; i++)
		if (i == 0 || strcmp(cands[i - 1].qlock, cands[i].qlock) != 0)
		{
			pq_lock_queueing_key(cands[i].qlock, false);
			qlocks[nq++] = CStringGetTextDatum(cands[i].qlock);
		}

	if (nq > 0)
	{
		Datum		v[1];

		v[0] = PointerGetDatum(construct_array(qlocks, nq, TEXTOID, -1, false,
											   TYPALIGN_INT));
		nholders = pq_exec(&stmt_queueing_holders, v, NULL, 0);
	}
	else
		nholders = 0;
	holders = palloc(sizeof(Holder) * Max(nholders, 1));
	for (int i = 0; i < nholders; i++)
	{
		bool		isnull;

		holders[i].qlock = pq_get_text(i, 1);
		holders[i].id = DatumGetInt64(pq_get_attr(i, 2, &isnull));
	}

	/* per queueing lock, in batch order: the first may go back to todo */
	for (int i = 0; i < ncands; i++)
	{
		PQFinishItem *job = &jobs[cands[i].pos];
		int64		holder = 0;

		if (i > 0 && strcmp(cands[i - 1].qlock, cands[i].qlock) == 0)
		{
			PQFinishItem *first = &jobs[cands[i - 1].pos];

			holder = strcmp(first->ended, "todo") == 0 ? first->id : first->holder;
		}
		else
		{
			Holder		probe = {(char *) cands[i].qlock, 0};
			Holder	   *found = bsearch(&probe, holders, nholders, sizeof(Holder),
										cmp_holder);

			if (found != NULL)
				holder = found->id;
		}

		job->holder = holder;
		if (holder != 0)
			job->error = psprintf("%s (not retried: job %lld already waits with queueing_lock \"%s\")",
								  job->error ? job->error : "failed",
								  (long long) holder, cands[i].qlock);
		else
			job->ended = "todo";
	}
}

/*
 * pq_finish_batch ends the n doing jobs of jobs[] (distinct ids), each
 * with its status (succeeded, failed or cancelled), result and error, and
 * sets each one's ended to the status it ended in: "todo" for a failed job
 * that will be retried.  All or nothing: a job that does not exist, or is
 * not doing (in its attempt, when the item gives one: fencing, see
 * pq_refuse_not_running), is an error before anything changes.  The caller
 * has checked the statuses and connected SPI.
 */
void
pq_finish_batch(PQFinishItem *jobs, int n)
{
	int64	   *sorted = palloc(sizeof(int64) * Max(n, 1));
	Datum		ids;
	int			nrows;
	int64	   *row_ids;
	int		   *row_of;
	Retryable  *cands;
	int			ncands = 0;
	double	   *delay;
	Datum	   *id_d;
	Datum	   *status_d;
	Datum	   *result_d;
	bool	   *result_n;
	Datum	   *error_d;
	bool	   *error_n;
	Datum	   *delay_d;
	Datum		v[5];
	int			dims[1];
	int			lbs[1] = {1};

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
		sorted[i] = jobs[i].id;
	qsort(sorted, n, sizeof(int64), cmp_int64_key);
	ids = pq_int8_array(sorted, n);

	/* lock queues first, then the rows, both in a fixed order */
	(void) pq_lock_queues_of(ids);
	v[0] = ids;
	nrows = pq_exec(&stmt_lock_batch, v, NULL, 0);

	row_ids = palloc(sizeof(int64) * Max(nrows, 1));
	for (int r = 0; r < nrows; r++)
	{
		bool		isnull;

		row_ids[r] = DatumGetInt64(pq_get_attr(r, 1, &isnull));
	}

	/*
	 * every job exists, is ours and is doing (in its attempt), checked in the
	 * order given
	 */
	row_of = palloc(sizeof(int) * n);
	for (int i = 0; i < n; i++)
	{
		int64	   *found = bsearch(&jobs[i].id, row_ids, nrows, sizeof(int64),
									cmp_int64_key);
		char	   *current;
		int32		attempts;
		bool		isnull;

		if (found == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("job %lld does not exist", (long long) jobs[i].id),
					 errdetail("No job of the batch was finished.")));
		row_of[i] = found - row_ids;
		pq_require_job_access(jobs[i].id, DatumGetObjectId(pq_get_attr(row_of[i], 7, &isnull)));
		current = pq_get_text(row_of[i], 2);
		attempts = DatumGetInt32(pq_get_attr(row_of[i], 3, &isnull));
		if (!pq_job_runs_in(current, attempts, &jobs[i].attempt))
			pq_refuse_not_running(jobs[i].id, current, attempts,
								  pq_get_text(row_of[i], 6), &jobs[i].attempt,
								  PQ_ACT_FINISH, true);
	}

	/* failed jobs with attempts left are retried, queueing locks permitting */
	cands = palloc(sizeof(Retryable) * n);
	delay = palloc0(sizeof(double) * n);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		int32		attempts = DatumGetInt32(pq_get_attr(row_of[i], 3, &isnull));
		int32		max_attempts = DatumGetInt32(pq_get_attr(row_of[i], 4, &isnull));

		jobs[i].ended = jobs[i].status;
		jobs[i].holder = 0;
		if (strcmp(jobs[i].status, "failed") != 0 || attempts >= max_attempts)
			continue;
		delay[i] = pq_retry_delay_seconds(attempts);
		cands[ncands].qlock = pq_get_text(row_of[i], 5);
		cands[ncands].pos = i;
		if (cands[ncands].qlock == NULL)
			jobs[i].ended = "todo";
		else
			ncands++;
	}
	decide_retries(jobs, cands, ncands);

	/* one UPDATE for the batch */
	id_d = palloc(sizeof(Datum) * n);
	status_d = palloc(sizeof(Datum) * n);
	result_d = palloc(sizeof(Datum) * n);
	result_n = palloc(sizeof(bool) * n);
	error_d = palloc(sizeof(Datum) * n);
	error_n = palloc(sizeof(bool) * n);
	delay_d = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		id_d[i] = Int64GetDatum(jobs[i].id);
		status_d[i] = CStringGetTextDatum(jobs[i].ended);
		result_d[i] = jobs[i].has_result ? jobs[i].result : (Datum) 0;
		result_n[i] = !jobs[i].has_result;
		error_d[i] = jobs[i].error ? CStringGetTextDatum(jobs[i].error) : (Datum) 0;
		error_n[i] = jobs[i].error == NULL;
		delay_d[i] = Float8GetDatum(strcmp(jobs[i].ended, "todo") == 0 ? delay[i] : 0);
	}
	dims[0] = n;
	v[0] = PointerGetDatum(construct_array(id_d, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[1] = PointerGetDatum(construct_array(status_d, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
	v[2] = PointerGetDatum(construct_md_array(result_d, result_n, 1, dims, lbs,
											  JSONBOID, -1, false, TYPALIGN_INT));
	v[3] = PointerGetDatum(construct_md_array(error_d, error_n, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
	v[4] = PointerGetDatum(construct_array(delay_d, n, FLOAT8OID, sizeof(float8),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (pq_exec(&stmt_finish_batch, v, NULL, 0) != n)
		elog(ERROR, "procq: finish_jobs updated fewer jobs than it locked");
}

/*
 * require_length raises an error when an optional array argument does not
 * have one element per job.
 */
static void
require_length(const char *name, int n, int njobs)
{
	if (n != njobs)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must have one element per job", name),
				 errdetail("job_ids has %d elements, %s has %d.", njobs, name, n),
				 errhint("Pass NULL for none, or NULL elements for the jobs without one.")));
}

/*
 * procq.finish_jobs(job_ids bigint[], status procq.job_status,
 *					 results jsonb[], errors text[], attempts integer[])
 * returns table (job_id bigint, status procq.job_status)
 *
 * Ends every job of job_ids with status, results[i] and errors[i] going to
 * job_ids[i], as finish_job would, in set-based statements; returns each
 * job and the status it ended in, in the order of job_ids.  attempts[i] is
 * the attempt job_ids[i] was fetched in, as finish_job's attempt (NULL
 * elements: not checked).  All or none.
 */
Datum
procq_finish_jobs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			status_type;
	char	   *status;
	Datum	   *id_elems;
	bool	   *id_nulls;
	int			n;
	Datum	   *res_elems = NULL;
	bool	   *res_nulls = NULL;
	Datum	   *err_elems = NULL;
	bool	   *err_nulls = NULL;
	Datum	   *att_elems = NULL;
	bool	   *att_nulls = NULL;
	int			nres;
	int			nerr;
	int			natt;
	PQFinishItem *jobs;

	InitMaterializedSRF(fcinfo, 0);
	status_type = TupleDescAttr(rsinfo->setDesc, 1)->atttypid;

	pq_require_arg(fcinfo, 0, "job_ids");
	pq_require_arg(fcinfo, 1, "status");
	status = DatumGetCString(DirectFunctionCall1(enum_out, PG_GETARG_DATUM(1)));
	pq_check_finish_status(status, false);

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
				TYPALIGN_DOUBLE, &id_elems, &id_nulls, &n);
	if (!PG_ARGISNULL(2))
	{
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), JSONBOID, -1, false, TYPALIGN_INT,
					&res_elems, &res_nulls, &nres);
		require_length("results", nres, n);
	}
	if (!PG_ARGISNULL(3))
	{
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false, TYPALIGN_INT,
					&err_elems, &err_nulls, &nerr);
		require_length("errors", nerr, n);
	}
	if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
	{
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), INT4OID, sizeof(int32), true,
						  TYPALIGN_INT, &att_elems, &att_nulls, &natt);
		require_length("attempts", natt, n);
	}

	jobs = palloc0(sizeof(PQFinishItem) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (id_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("job_ids must not contain NULL"),
					 errdetail("Element %d of job_ids is NULL.", i + 1)));
		jobs[i].id = DatumGetInt64(id_elems[i]);
		jobs[i].status = status;
		jobs[i].has_result = res_elems != NULL && !res_nulls[i];
		jobs[i].result = jobs[i].has_result ? res_elems[i] : (Datum) 0;
		jobs[i].error = err_elems != NULL && !err_nulls[i]
			? TextDatumGetCString(err_elems[i]) : NULL;
		jobs[i].attempt.given = att_elems != NULL && !att_nulls[i];
		jobs[i].attempt.value = jobs[i].attempt.given ? DatumGetInt32(att_elems[i]) : 0;
		pq_check_finish_status(status, jobs[i].has_result);
	}

	/* a job finished twice is a mistake of the caller: say which */
	if (n > 1)
	{
		IdPos	   *byid = palloc(sizeof(IdPos) * n);

		for (int i = 0; i < n; i++)
		{
			byid[i].id = jobs[i].id;
			byid[i].pos = i;
		}
		qsort(byid, n, sizeof(IdPos), cmp_id_pos);
		for (int i = 1; i < n; i++)
			if (byid[i].id == byid[i - 1].id)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("job %lld appears more than once in job_ids",
								(long long) byid[i].id),
						 errdetail("Elements %d and %d of job_ids are both %lld.",
								   byid[i - 1].pos + 1, byid[i].pos + 1,
								   (long long) byid[i].id)));
	}

	pq_connect();
	pq_finish_batch(jobs, n);
	pq_finish();

	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int64GetDatum(jobs[i].id);
		values[1] = DirectFunctionCall2(enum_in, CStringGetDatum(jobs[i].ended),
										ObjectIdGetDatum(status_type));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
