/*-------------------------------------------------------------------------
 *
 * fetch.c
 *	  Taking jobs: procq.fetch_job for external workers, and the fetch of
 *	  the background workers, which takes only jobs whose task has a
 *	  handler.
 *
 * A fetch takes the best ready job (highest priority, then lowest id) in
 * a ready index, skipping rows other fetchers have locked, and makes it
 * doing in the same statement.  Jobs scheduled for later are not in the
 * ready indexes: each fetch first makes up to ten due ones ready.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/tuplestore.h"

#include "fetch.h"
#include "guc.h"
#include "notify.h"
#include "procq.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_fetch_job);

/* The UPDATE that takes the best ready job, completed by a queue filter. */
#define FETCH_PREFIX \
	"UPDATE procq.jobs SET status = 'doing', attempts = attempts + 1," \
	" started_at = clock_timestamp(), finished_at = NULL," \
	" worker = coalesce($1, 'backend ' || pg_backend_pid())," \
	" lease_expires_at = clock_timestamp() + make_interval(secs => $2)" \
	" WHERE id = (SELECT id FROM procq.jobs WHERE " PQ_READY_COND
#define FETCH_SUFFIX \
	" ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *"

static PQStatement stmt_promote_due = PQ_STATEMENT(
	"WITH due AS (SELECT id FROM procq.jobs"
	"  WHERE status = 'todo' AND delayed"
	"  AND scheduled_at <= statement_timestamp()"
	"  ORDER BY scheduled_at LIMIT 10 FOR UPDATE SKIP LOCKED)"
	" UPDATE procq.jobs j SET delayed = false FROM due WHERE j.id = due.id"
	" RETURNING j.queue, j.pending_parents = 0 AND NOT j.lock_blocked",
	0, InvalidOid);

static PQStatement stmt_fetch_any = PQ_STATEMENT(
	FETCH_PREFIX FETCH_SUFFIX,
	2, TEXTOID, INT4OID);

static PQStatement stmt_fetch_one_queue = PQ_STATEMENT(
	FETCH_PREFIX " AND queue = $3" FETCH_SUFFIX,
	3, TEXTOID, INT4OID, TEXTOID);

/* queues of $1 with ready jobs, best job first */
static PQStatement stmt_queues_by_readiness = PQ_STATEMENT(
	"SELECT q.name FROM (SELECT DISTINCT name FROM unnest($1::text[]) AS name) q"
	" CROSS JOIN LATERAL (SELECT j.priority, j.id FROM procq.jobs j"
	"  WHERE j.queue = q.name AND " PQ_READY_COND
	"  ORDER BY j.priority DESC, j.id LIMIT 1) c"
	" ORDER BY c.priority DESC, c.id",
	1, TEXTARRAYOID);

/* tasks with a handler of kind $1 and ready jobs, best job first */
static PQStatement stmt_handled_tasks = PQ_STATEMENT(
	"SELECT h.task FROM procq.handlers h CROSS JOIN LATERAL"
	" (SELECT j.priority, j.id FROM procq.jobs j"
	"  WHERE j.task = h.task AND " PQ_READY_COND
	"  ORDER BY j.priority DESC, j.id LIMIT 1) c"
	" WHERE h.kind = $1 ORDER BY c.priority DESC, c.id",
	1, TEXTOID);

/* reads the handler in the same statement, so that it is there */
static PQStatement stmt_fetch_handled = PQ_STATEMENT(
	"UPDATE procq.jobs j SET status = 'doing', attempts = j.attempts + 1,"
	" started_at = clock_timestamp(), finished_at = NULL, worker = $1,"
	" lease_expires_at = clock_timestamp() + make_interval(secs => $2)"
	" FROM procq.handlers h"
	" WHERE j.id = (SELECT c.id FROM procq.jobs c WHERE " PQ_READY_COND
	"  AND c.task = $3"
	/* a handler only runs jobs of roles its registrant may act as */
	"  AND EXISTS (SELECT 1 FROM procq.handlers x WHERE x.task = c.task"
	"   AND pg_catalog.pg_has_role(x.registered_by::oid, c.deferred_by::oid, 'USAGE'))"
	"  ORDER BY c.priority DESC, c.id LIMIT 1 FOR UPDATE SKIP LOCKED)"
	" AND h.task = j.task"
	" RETURNING j.id, j.task, j.args, j.deferred_by, h.command,"
	" (extract(epoch FROM h.timeout) * 1000)::int8, h.registered_by",
	3, TEXTOID, INT4OID, TEXTOID);

/*
 * pq_promote_due makes up to ten jobs whose scheduled time has come
 * fetchable, so that the ready indexes never hold jobs of the future; with
 * notify, the queues of those that became ready are notified.
 */
void
pq_promote_due(bool notify)
{
	int			npromoted = pq_exec(&stmt_promote_due, NULL, NULL, 0);
	bool		isnull;

	if (!notify)
		return;
	for (int i = 0; i < npromoted; i++)
		if (DatumGetBool(pq_get_attr(i, 2, &isnull)))
			pq_notify_ready(pq_get_text(i, 1));
}

/*
 * fetch_from_queues takes the best ready job of several queues: the queues
 * are ordered by their best ready job, each is one probe of the per-queue
 * ready index, and the first queue that has a job nobody else is taking
 * gives it.  (A queue whose best job another fetcher is taking at that
 * instant gives its next best.)  v holds the worker and lease parameters.
 */
static bool
fetch_from_queues(ArrayType *queues, Datum *v, const char *n)
{
	Datum		q[1] = {PointerGetDatum(queues)};
	int			nready = pq_exec(&stmt_queues_by_readiness, q, NULL, 0);
	char	  **ready = palloc(sizeof(char *) * Max(nready, 1));
	bool		found = false;

	for (int i = 0; i < nready; i++)
		ready[i] = pq_get_text(i, 1);
	for (int i = 0; i < nready && !found; i++)
	{
		v[2] = CStringGetTextDatum(ready[i]);
		found = pq_exec(&stmt_fetch_one_queue, v, n, 1) == 1;
	}
	return found;
}

/*
 * procq.fetch_job(queues text[], worker text) returns setof procq.jobs
 *
 * Returns zero or one job, now doing: the best ready job of the given
 * queues (NULL: of any queue).
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
	pq_promote_due(true);

	if (queues == NULL)
		found = pq_exec(&stmt_fetch_any, v, n, 1) == 1;
	else if (nqueues == 1)
	{
		v[2] = elems[0];
		found = pq_exec(&stmt_fetch_one_queue, v, n, 1) == 1;
	}
	else
		found = fetch_from_queues(queues, v, n);
	if (found)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[0]);

	pq_finish();
	return (Datum) 0;
}

/*
 * pq_fetch_handled_job takes, for the background worker named worker, the
 * best ready job whose task has a handler of the given kind, with that
 * handler, and leases it for lease_seconds.  Returns false when there is none.
 * Everything returned lives in cxt.
 *
 * It looks at the handled tasks one by one, best ready job first, in the
 * per-task ready index: ready jobs of tasks without a handler (left for
 * external workers) cost nothing, however many there are.  Within a task,
 * jobs other workers are taking are skipped.
 */
bool
pq_fetch_handled_job(const char *kind, const char *worker, int lease_seconds,
					 PQFetchedJob *job, MemoryContext cxt)
{
	Datum		v[3];
	bool		isnull;
	MemoryContext old;
	int			ntasks;
	char	  **tasks;
	bool		found = false;

	v[0] = CStringGetTextDatum(kind);
	ntasks = pq_exec(&stmt_handled_tasks, v, NULL, 0);
	tasks = palloc(sizeof(char *) * Max(ntasks, 1));
	for (int i = 0; i < ntasks; i++)
		tasks[i] = pq_get_text(i, 1);

	v[0] = CStringGetTextDatum(worker);
	v[1] = Int32GetDatum(lease_seconds);
	for (int i = 0; i < ntasks && !found; i++)
	{
		v[2] = CStringGetTextDatum(tasks[i]);
		found = pq_exec(&stmt_fetch_handled, v, NULL, 1) == 1;
	}
	if (!found)
		return false;

	old = MemoryContextSwitchTo(cxt);
	job->id = DatumGetInt64(pq_get_attr(0, 1, &isnull));
	job->task = pq_get_text(0, 2);
	job->args = datumCopy(pq_get_attr(0, 3, &isnull), false, -1);
	job->deferred_by = DatumGetObjectId(pq_get_attr(0, 4, &isnull));
	job->command = pq_get_text(0, 5);
	job->timeout_ms = DatumGetInt64(pq_get_attr(0, 6, &isnull));
	if (isnull)
		job->timeout_ms = 0;
	job->registered_by = DatumGetObjectId(pq_get_attr(0, 7, &isnull));
	MemoryContextSwitchTo(old);
	return true;
}
