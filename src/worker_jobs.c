/*-------------------------------------------------------------------------
 *
 * worker_jobs.c
 *	  Claiming jobs for a background worker and recording their outcomes,
 *	  each in one statement per batch.
 *
 * The claim takes up to n ready jobs of the tasks that have a handler of
 * the given kind, best first, skipping rows other workers are taking,
 * through the per-task ready index (ready jobs of tasks without a handler,
 * left for external workers, cost nothing), and makes them doing in the
 * same statement.  The ready condition itself keeps the lock rule: only
 * the head of a lock queue is ready, so a batch holds at most one job per
 * lock value, and never a blocked one.
 *
 * The outcomes of a batch are written by one UPDATE in the batch's own
 * transaction, which already holds the rows' locks since the claim: no
 * second lock on a job row, hence no MultiXact.  The status trigger does
 * the rest (releases, cascades, lock queues), as for finish_job.  That
 * UPDATE, like putting back an interrupted job, is fenced as finish_job
 * with an attempt is: it only changes a job still doing under this
 * worker's name in the attempt the worker claimed.  A shell job's outcome
 * is written in a transaction of its own, after its program ran, and the
 * job may have been put back and fetched again meanwhile (under any worker
 * name: fetch_job takes the name it is given).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "lifecycle.h"
#include "locks.h"
#include "procq.h"
#include "shmem.h"
#include "spi_exec.h"
#include "worker_jobs.h"
#include "worker_xact.h"

/*
 * The claim, with its LIMIT written in: with a parameter there, every
 * execution was planned again (a generic plan is costed for a tenth of the
 * table, so the plan cache kept choosing custom plans).  The jobs to update
 * are given by id (an array from an InitPlan), so that even that estimate
 * could not make the update scan all of procq.jobs.  %d is the limit.
 *
 * The candidates, the best n x procq.workers ready jobs of each task with
 * a handler and each role its registrant has the privileges of (the first
 * %d), are read without locking (the cost depends on the tasks with
 * handlers, the roles that have ready jobs (found by a loose scan, one
 * descent each), n and procq.workers, not on other tasks' ready jobs nor
 * on ready jobs of roles the handler may not run: the per-task ready
 * index leads with deferred_by); only then are the best n of them that are still ready locked
 * (the second %d), skipping those other workers are taking.  The lock
 * sits above the sort, under the LIMIT: no row beyond the n claimed ones
 * stays locked for the length of the batch.  Why n x procq.workers: the
 * other workers' uncommitted batches, still todo in this statement's
 * snapshot, lock at most n x (procq.workers - 1) jobs, so the best n
 * unlocked ready jobs of each task are among its candidates, and the
 * claim takes the best n unlocked ready jobs overall, as the lock per
 * task did.
 */
#define CLAIM_SQL \
	"WITH RECURSIVE " PQ_ROLES_WITH("ready", PQ_READY_ALL_COND) \
	" UPDATE procq.jobs j SET status = 'doing', attempts = j.attempts + 1," \
	" started_at = clock_timestamp(), finished_at = NULL, worker = $1," \
	" lease_expires_at = clock_timestamp() + make_interval(secs => $2)" \
	" FROM procq.handlers h" \
	" WHERE j.id = ANY (ARRAY(SELECT q.id FROM procq.jobs q" \
	"  WHERE q.id = ANY (ARRAY(SELECT c.id FROM procq.handlers x" \
	/* a handler only runs jobs of roles its registrant may act as: only */ \
	/* those roles' parts of the per-task ready index are read */ \
	"   CROSS JOIN LATERAL (SELECT a.role FROM ready a WHERE a.role IS NOT NULL" \
	"    AND pg_catalog.pg_has_role(x.registered_by::oid, a.role, 'USAGE')) ro" \
	"   CROSS JOIN LATERAL (SELECT r.id FROM procq.jobs r" \
	"    WHERE r.deferred_by = ro.role AND r.task = x.task AND " PQ_READY_COND \
	"    ORDER BY r.priority DESC, r.id LIMIT %d) c" \
	"   WHERE x.kind = $3))" \
	/* still ready, written so that it implies no ready index's predicate: */ \
	/* the candidates are looked up by primary key, never by a walk of a */ \
	/* whole ready index (which a stale estimate could otherwise choose) */ \
	"  AND q.status = 'todo' AND q.pending_parents = 0 AND NOT q.lock_blocked" \
	"  AND q.delayed IS NOT TRUE" \
	"  ORDER BY q.priority DESC, q.id LIMIT %d FOR UPDATE OF q SKIP LOCKED))" \
	" AND h.task = j.task" \
	" RETURNING j.id, j.task, j.args, j.deferred_by, h.command," \
	" (extract(epoch FROM h.timeout) * 1000)::int8, h.registered_by," \
	" h.registered_at, j.attempts, j.max_attempts, j.priority, j.lock," \
	" j.queueing_lock"

/*
 * The claim statements of this worker: one for a single job (shell jobs,
 * and SQL jobs after a worker death), one for procq.batch_size, made again
 * when that setting changes.  In TopMemoryContext.
 */
static PQStatement *claim_one = NULL;
static PQStatement *claim_batch = NULL;
static int	claim_batch_n = 0;	/* the limit of claim_batch */
static int	claim_one_cands = 0;	/* the candidates per task of each */
static int	claim_batch_cands = 0;

/*
 * claim_statement returns the claim statement for n jobs, making it (with
 * its kept plan freed, if it had one) when there is none for n and the
 * current procq.workers.
 */
static PQStatement *
claim_statement(int n)
{
	PQStatement **slot = (n == 1) ? &claim_one : &claim_batch;
	int		   *slot_cands = (n == 1) ? &claim_one_cands : &claim_batch_cands;
	PQStatement *stmt = *slot;
	int			cands = (int) Min((int64) n * Max(pq_workers, 1), 1000000);

	if (stmt != NULL && (n == 1 || claim_batch_n == n) && *slot_cands == cands)
		return stmt;
	if (n != 1)
		claim_batch_n = n;
	*slot_cands = cands;
	if (stmt == NULL)
		stmt = MemoryContextAllocZero(TopMemoryContext, sizeof(PQStatement));
	else
	{
		if (stmt->plan != NULL)
			SPI_freeplan(stmt->plan);
		pfree((char *) stmt->sql);
	}
	stmt->sql = MemoryContextStrdup(TopMemoryContext, psprintf(CLAIM_SQL, cands, n));
	stmt->nargs = 3;
	stmt->argtypes[0] = TEXTOID;
	stmt->argtypes[1] = INT4OID;
	stmt->argtypes[2] = TEXTOID;
	stmt->plan = NULL;
	*slot = stmt;
	return stmt;
}

static PQStatement stmt_outcomes = PQ_STATEMENT(
	"UPDATE procq.jobs j SET status = o.status::procq.job_status,"
	" result = o.result, error = o.error, lease_expires_at = NULL,"
	" finished_at = CASE WHEN o.status = 'todo' THEN NULL ELSE clock_timestamp() END,"
	" scheduled_at = CASE WHEN o.status = 'todo'"
	"   THEN clock_timestamp() + make_interval(secs => o.delay) ELSE j.scheduled_at END,"
	" delayed = (o.status = 'todo' AND o.delay > 0)"
	" FROM unnest($1, $2, $3, $4, $5, $7) AS o(id, status, result, error, delay, attempt)"
	" WHERE j.id = o.id AND j.status = 'doing' AND j.worker = $6"
	" AND j.attempts = o.attempt",
	7, INT8ARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID, TEXTOID,
	INT4ARRAYOID);

/* A job interrupted by a clean stop goes back as if it had not been taken. */
static PQStatement stmt_put_back = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'todo', attempts = attempts - 1,"
	" lease_expires_at = NULL, started_at = NULL, worker = NULL"
	" WHERE id = $1 AND status = 'doing' AND worker = $2 AND attempts = $3",
	3, INT8OID, TEXTOID, INT4OID);

/*
 * pq_error_text renders an error for procq.jobs.error: message, SQLSTATE,
 * detail, hint and context.
 */
char *
pq_error_text(ErrorData *edata)
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
 * compare_jobs orders claimed jobs as the fetch does: highest priority,
 * then lowest id.
 */
static int
compare_jobs(const void *a, const void *b)
{
	const PQWorkerJob *x = a;
	const PQWorkerJob *y = b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return x->id < y->id ? -1 : (x->id > y->id ? 1 : 0);
}

/*
 * pq_claim_jobs claims up to n ready jobs whose task has a handler of kind
 * kind (sql or shell), leased for lease_seconds to this worker, and returns
 * how many, in *jobs, in fetch order.  Everything returned lives in cxt,
 * args detoasted: it stays valid after the transaction ends.  The caller
 * has connected SPI.
 */
int
pq_claim_jobs(const char *kind, int n, int lease_seconds, PQWorkerJob **jobs,
			  MemoryContext cxt)
{
	Datum		v[3];
	int			njobs;
	PQWorkerJob *out;
	MemoryContext old;

	v[0] = CStringGetTextDatum(pq_my_name);
	v[1] = Int32GetDatum(lease_seconds);
	v[2] = CStringGetTextDatum(kind);
	njobs = pq_exec(claim_statement(n), v, NULL, 0);

	old = MemoryContextSwitchTo(cxt);
	out = palloc0(sizeof(PQWorkerJob) * Max(njobs, 1));
	for (int i = 0; i < njobs; i++)
	{
		PQWorkerJob *job = &out[i];
		bool		isnull;

		job->id = DatumGetInt64(pq_get_attr(i, 1, &isnull));
		job->task = pq_get_text(i, 2);
		/* a copy, never a toast pointer: it is read after the commit */
		job->args = PointerGetDatum(PG_DETOAST_DATUM_COPY(pq_get_attr(i, 3, &isnull)));
		job->deferred_by = DatumGetObjectId(pq_get_attr(i, 4, &isnull));
		job->command = pq_get_text(i, 5);
		job->timeout_ms = DatumGetInt64(pq_get_attr(i, 6, &isnull));
		if (isnull)
			job->timeout_ms = 0;
		job->registered_by = DatumGetObjectId(pq_get_attr(i, 7, &isnull));
		job->registered_at = DatumGetTimestampTz(pq_get_attr(i, 8, &isnull));
		job->attempts = DatumGetInt32(pq_get_attr(i, 9, &isnull));
		job->max_attempts = DatumGetInt32(pq_get_attr(i, 10, &isnull));
		job->priority = DatumGetInt32(pq_get_attr(i, 11, &isnull));
		job->lock = pq_get_text(i, 12);
		job->queueing_lock = pq_get_text(i, 13);
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);

	qsort(out, njobs, sizeof(PQWorkerJob), compare_jobs);
	*jobs = out;
	return njobs;
}

/*
 * compare_text_ptrs orders lock values, so that a batch takes its lock
 * queues' procq locks in one order.
 */
static int
compare_text_ptrs(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * pq_record_outcomes writes the outcome of every job of jobs[0..n) that
 * has one, in one UPDATE, with finish_job's semantics: a failed job with
 * attempts left (and not failed for good) goes back to todo after its
 * backoff, unless another todo job holds its queueing_lock.  The procq
 * locks of the jobs' lock queues come first, as for finish_job.  Returns
 * how many jobs it changed: a job a handler finished or changed itself is
 * no longer doing and keeps what the handler did, and a job no longer
 * doing in the attempt this worker claimed (see the file header) is left
 * to whoever holds it now.  The caller has connected SPI.
 */
int
pq_record_outcomes(PQWorkerJob *jobs, int n)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *statuses = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *results = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *result_nulls = palloc(sizeof(bool) * Max(n, 1));
	Datum	   *errors = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *error_nulls = palloc(sizeof(bool) * Max(n, 1));
	Datum	   *delays = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *attempts = palloc(sizeof(Datum) * Max(n, 1));
	char	  **locks = palloc(sizeof(char *) * Max(n, 1));
	int			nlocks = 0;
	int			m = 0;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		v[7];

	/* its lock waits are bounded by procq.worker_lock_timeout */
	pq_lock_waits_begin();
	for (int i = 0; i < n; i++)
		if (jobs[i].status != NULL && jobs[i].lock != NULL)
			locks[nlocks++] = jobs[i].lock;
	qsort(locks, nlocks, sizeof(char *), compare_text_ptrs);
	for (int i = 0; i < nlocks; i++)
		pq_lock_key(locks[i]);

	for (int i = 0; i < n; i++)
	{
		PQWorkerJob *job = &jobs[i];
		const char *status = job->status;
		char	   *error = job->error;
		double		delay = 0;

		if (status == NULL)
			continue;
		if (strcmp(status, "failed") == 0 && !job->for_good &&
			job->attempts < job->max_attempts)
		{
			int64		holder = 0;

			if (job->queueing_lock != NULL)
			{
				pq_lock_queueing_key(job->queueing_lock, false);
				holder = pq_queueing_lock_holder(job->queueing_lock);
			}
			if (holder != 0)
				error = psprintf("%s (not retried: job %lld already waits with queueing_lock \"%s\")",
								 error ? error : "failed", (long long) holder,
								 job->queueing_lock);
			else
			{
				status = "todo";
				delay = pq_retry_delay_seconds(job->attempts);
			}
		}
		ids[m] = Int64GetDatum(job->id);
		statuses[m] = CStringGetTextDatum(status);
		result_nulls[m] = !job->has_result;
		results[m] = job->has_result ? job->result : (Datum) 0;
		error_nulls[m] = (error == NULL);
		errors[m] = error ? CStringGetTextDatum(error) : (Datum) 0;
		delays[m] = Float8GetDatum(delay);
		attempts[m] = Int32GetDatum(job->attempts);
		m++;
	}
	if (m == 0)
	{
		pq_lock_waits_end();
		return 0;
	}

	dims[0] = m;
	v[0] = PointerGetDatum(construct_array(ids, m, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[1] = PointerGetDatum(construct_array(statuses, m, TEXTOID, -1, false, TYPALIGN_INT));
	v[2] = PointerGetDatum(construct_md_array(results, result_nulls, 1, dims, lbs,
											  JSONBOID, -1, false, TYPALIGN_INT));
	v[3] = PointerGetDatum(construct_md_array(errors, error_nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
	v[4] = PointerGetDatum(construct_array(delays, m, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[5] = CStringGetTextDatum(pq_my_name);
	v[6] = PointerGetDatum(construct_array(attempts, m, INT4OID, 4, true, TYPALIGN_INT));
	m = pq_exec(&stmt_outcomes, v, NULL, 0);
	pq_lock_waits_end();
	return m;
}

/*
 * pq_put_back_uncounted puts a doing job of this worker, in the attempt it
 * claimed, back to todo as if it had not been taken (its attempt not
 * counted): for a job interrupted by a clean stop of its worker.  Returns false, changing nothing, when
 * another todo job holds its queueing_lock (the job is then recovered as
 * a dead worker's).  The caller has connected SPI.
 */
bool
pq_put_back_uncounted(int64 job_id, int32 attempts, const char *lock,
					  const char *queueing_lock)
{
	Datum		v[3];
	bool		put_back = false;

	pq_lock_waits_begin();
	if (lock != NULL)
		pq_lock_key(lock);
	if (queueing_lock != NULL)
		pq_lock_queueing_key(queueing_lock, false);
	if (queueing_lock == NULL || pq_queueing_lock_holder(queueing_lock) == 0)
	{
		v[0] = Int64GetDatum(job_id);
		v[1] = CStringGetTextDatum(pq_my_name);
		v[2] = Int32GetDatum(attempts);
		put_back = pq_exec(&stmt_put_back, v, NULL, 0) == 1;
	}
	pq_lock_waits_end();
	return put_back;
}
