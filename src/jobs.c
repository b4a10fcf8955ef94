/*-------------------------------------------------------------------------
 *
 * jobs.c
 *	  Looking up and locking single jobs: their status, lock, queue and
 *	  readiness, the parents that hold them back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "jobs.h"
#include "procq.h"
#include "spi_exec.h"

static PQStatement stmt_lookup = PQ_STATEMENT(
	"SELECT status::text, lock, queueing_lock, queue, " PQ_READY_COND
	" FROM procq.jobs WHERE id = $1",
	1, INT8OID);

static PQStatement stmt_lock_for_share = PQ_STATEMENT(
	"SELECT id, status::text FROM procq.jobs WHERE id = ANY($1)"
	" ORDER BY id FOR SHARE",
	1, INT8ARRAYOID);

static PQStatement stmt_failed_parent = PQ_STATEMENT(
	"SELECT p.id, p.status::text FROM procq.job_dependencies d"
	" JOIN procq.jobs p ON p.id = d.depends_on"
	" WHERE d.job_id = $1 AND p.status IN ('failed', 'cancelled')"
	" ORDER BY p.id LIMIT 1",
	1, INT8OID);

/*
 * pq_job_lookup reads a job's status, lock, queueing_lock, queue and
 * readiness into *info, without locking it.  Returns false when there is
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
 * (id, status), ordered by id, are in SPI_tuptable.
 *
 * Locking a job before reading its status means that a job changing status
 * right now is waited for and seen afterwards, and one that changes after
 * us waits until our transaction ends.
 */
int
pq_lock_jobs_for_share(Datum ids)
{
	Datum		v[1] = {ids};

	return pq_exec(&stmt_lock_for_share, v, NULL, 0);
}

/*
 * pq_job_failed_parent finds the parent with the lowest id of a job that
 * failed or was cancelled, and its status.  Returns false when none did.
 */
bool
pq_job_failed_parent(int64 job_id, int64 *parent, char **status)
{
	Datum		v[1] = {Int64GetDatum(job_id)};
	bool		isnull;

	if (pq_exec(&stmt_failed_parent, v, NULL, 1) == 0)
		return false;
	*parent = DatumGetInt64(pq_get_attr(0, 1, &isnull));
	*status = pq_get_text(0, 2);
	return true;
}
