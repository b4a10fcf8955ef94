/*-------------------------------------------------------------------------
 *
 * get_job.c
 *	  procq.get_job, get_jobs and wait_job: what a producer needs to see
 *	  its jobs and wait for a result, without SELECT on procq.jobs.
 *
 * Each reads the jobs as the owner of the table (spi_exec.c), under the
 * rule of authz.c: the caller must be a superuser or have the privileges
 * of each job's deferred_by, else 42501.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "args.h"
#include "authz.h"
#include "jobs.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_get_job);
PG_FUNCTION_INFO_V1(procq_get_jobs);
PG_FUNCTION_INFO_V1(procq_wait_job);

/* The longest pause between two looks of wait_job, in milliseconds. */
#define WAIT_MAX_PAUSE_MS 50

static PQStatement stmt_get = PQ_STATEMENT(
	"SELECT * FROM procq.jobs WHERE id = $1",
	1, INT8OID);

/* the jobs of $1 that exist, each once, in the order of their first mention */
static PQStatement stmt_get_many = PQ_STATEMENT(
	"SELECT j.* FROM (SELECT id, min(ord) AS ord"
	"  FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, ord) GROUP BY id) u"
	" JOIN procq.jobs j ON j.id = u.id ORDER BY u.ord",
	1, INT8ARRAYOID);

/*
 * check_rows raises 42501 unless the current user may act on every job of
 * the last statement's result.
 */
static void
check_rows(int nrows)
{
	int			id_col = SPI_fnumber(SPI_tuptable->tupdesc, "id");
	int			by_col = SPI_fnumber(SPI_tuptable->tupdesc, "deferred_by");

	for (int i = 0; i < nrows; i++)
	{
		bool		isnull;

		pq_require_job_access(DatumGetInt64(pq_get_attr(i, id_col, &isnull)),
							  DatumGetObjectId(pq_get_attr(i, by_col, &isnull)));
	}
}

/*
 * get_row reads job job_id (P0002 when there is none, 42501 when the
 * current user may not see it) and returns its status; the row is in
 * SPI_tuptable.  The caller has connected SPI.
 */
static char *
get_row(int64 job_id)
{
	Datum		v[1] = {Int64GetDatum(job_id)};

	if (pq_exec(&stmt_get, v, NULL, 1) == 0)
		pq_job_not_found(job_id);
	check_rows(1);
	/* status is a procq.job_status: its output function makes it text */
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						SPI_fnumber(SPI_tuptable->tupdesc, "status"));
}

/*
 * procq.get_job(job_id bigint) returns procq.jobs
 *
 * The job's row, as it is now.
 */
Datum
procq_get_job(PG_FUNCTION_ARGS)
{
	Datum		row;

	pq_require_arg(fcinfo, 0, "job_id");
	pq_connect();
	(void) get_row(PG_GETARG_INT64(0));
	row = PointerGetDatum(SPI_returntuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc));
	pq_finish();
	PG_RETURN_DATUM(row);
}

/*
 * procq.get_jobs(job_ids bigint[]) returns setof procq.jobs
 *
 * The rows of the jobs of job_ids that exist, each once, in the order of
 * job_ids; 42501 (and no row) when the current user may not see one of
 * them.  A job that is not there (never was, or was purged) has no row.
 */
Datum
procq_get_jobs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		v[1];
	int			nrows;

	InitMaterializedSRF(fcinfo, 0);
	pq_require_arg(fcinfo, 0, "job_ids");
	v[0] = PG_GETARG_DATUM(0);

	pq_connect();
	nrows = pq_exec(&stmt_get_many, v, NULL, 0);
	check_rows(nrows);
	for (int i = 0; i < nrows; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	pq_finish();
	return (Datum) 0;
}

/*
 * is_final says whether a status is one a job ends in.
 */
static bool
is_final(const char *status)
{
	return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
		strcmp(status, "cancelled") == 0;
}

/*
 * procq.wait_job(job_id bigint, timeout interval) returns procq.jobs
 *
 * Waits until the job has ended (succeeded, failed for good, cancelled) or
 * timeout has passed (NULL: no limit but statement_timeout), and returns
 * its row as it is then: its status says which.  Looks at the job with a
 * fresh snapshot after pauses that grow to WAIT_MAX_PAUSE_MS; a cancel or
 * statement_timeout interrupts the wait.
 */
Datum
procq_wait_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	TimestampTz deadline = 0;
	bool		has_deadline = !PG_ARGISNULL(1);
	long		pause_ms = 1;
	Datum		row;

	pq_require_arg(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	if (has_deadline)
	{
		Interval   *timeout = PG_GETARG_INTERVAL_P(1);

		int64		ms;

		/* days count as 24 hours; months have no fixed length */
		if (timeout->month != 0 || timeout->day < 0 || timeout->time < 0 ||
			timeout->day > 365 * 100)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timeout must be an interval of days, hours, minutes or seconds, at least 0"),
					 errhint("Pass NULL to wait without a limit.")));
		ms = timeout->day * (int64) (SECS_PER_DAY * 1000) + timeout->time / 1000;
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	}

	/* what a look allocates lives in SPI's memory, freed by pq_finish */
	for (;;)
	{
		bool		done;
		long		left_ms = pause_ms;

		pq_connect();
		done = is_final(get_row(job_id));
		if (!done && has_deadline)
		{
			TimestampTz now = GetCurrentTimestamp();

			if (now >= deadline)
				done = true;
			else
				left_ms = Min(pause_ms,
							  TimestampDifferenceMilliseconds(now, deadline));
		}
		if (done)
		{
			row = PointerGetDatum(SPI_returntuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc));
			pq_finish();
			break;
		}
		pq_finish();

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(left_ms, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		pause_ms = Min(pause_ms * 2, WAIT_MAX_PAUSE_MS);
	}
	PG_RETURN_DATUM(row);
}
