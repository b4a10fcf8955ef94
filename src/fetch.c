/*-------------------------------------------------------------------------
 *
 * fetch.c
 *	  Taking jobs: procq.fetch_job and fetch_jobs for external workers,
 *	  and promoting due scheduled jobs (also for the background workers,
 *	  whose claim is in worker_jobs.c).
 *
 * A fetch takes the best ready job (highest priority, then lowest id) in
 * a ready index, skipping rows other fetchers have locked, and makes it
 * doing in the same statement.  Jobs scheduled for later are not in the
 * ready indexes: each fetch first makes up to ten due ones ready (after a
 * probe of jobs_delayed_idx that makes this nearly free when none is due).
 *
 * procq.fetch_jobs (and fetch_job with a tasks filter, as a batch of one)
 * takes up to n jobs the same way, in one statement: it
 * reads the first n entries of a ready index that nobody else has locked,
 * locks them and makes them doing.  A filter on tasks reads the per-task
 * ready index (one descent per task), so ready jobs of other tasks cost
 * nothing; a filter on several queues (without tasks) reads each queue's
 * ready index.  Ready jobs never share a lock value (only a lock queue's
 * head is ready, see locks.c), so a batch holds at most one job per lock.
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

#include "args.h"
#include "fetch.h"
#include "guc.h"
#include "notify.h"
#include "procq.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_fetch_job);
PG_FUNCTION_INFO_V1(procq_fetch_jobs);

/* The UPDATE that takes the best ready job, completed by a queue filter. */
#define FETCH_PREFIX \
	"UPDATE procq.jobs SET status = 'doing', attempts = attempts + 1," \
	" started_at = clock_timestamp(), finished_at = NULL," \
	" worker = coalesce($1, 'backend ' || pg_backend_pid())," \
	" lease_expires_at = clock_timestamp() + make_interval(secs => $2)" \
	" WHERE id = (SELECT id FROM procq.jobs WHERE " PQ_READY_COND
#define FETCH_SUFFIX \
	" ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *"

/* makes up to $1 due jobs ready */
static PQStatement stmt_promote_due = PQ_STATEMENT(
	"WITH due AS (SELECT id FROM procq.jobs"
	"  WHERE status = 'todo' AND delayed"
	"  AND scheduled_at <= statement_timestamp()"
	"  ORDER BY scheduled_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
	" UPDATE procq.jobs j SET delayed = false FROM due WHERE j.id = due.id"
	" RETURNING j.queue, j.pending_parents = 0 AND NOT j.lock_blocked",
	1, INT4OID);

/*
 * Is any job due?  One probe of jobs_delayed_idx, so that a fetch with
 * nothing due does not pay for the promoting UPDATE.
 */
static PQStatement stmt_any_due = PQ_STATEMENT(
	"SELECT 1 FROM procq.jobs WHERE status = 'todo' AND delayed"
	" AND scheduled_at <= statement_timestamp() LIMIT 1",
	0, InvalidOid);

/*
 * The batch fetch: cand (completed by one of the BATCH_CAND_* selects
 * below) locks up to $3 ready jobs, skipping those others hold; they
 * become doing by primary key, and come back in fetch order.  $1 is the
 * worker, $2 the lease in seconds.  They run their generic plan: with
 * LIMIT $3 the plan cache would otherwise plan them anew on every call,
 * which costs more than the claim itself.
 */
#define BATCH_PREFIX "WITH cand AS MATERIALIZED ("
#define BATCH_SUFFIX \
	"), taken AS (UPDATE procq.jobs j SET status = 'doing'," \
	" attempts = j.attempts + 1, started_at = clock_timestamp()," \
	" finished_at = NULL, worker = coalesce($1, 'backend ' || pg_backend_pid())," \
	" lease_expires_at = clock_timestamp() + make_interval(secs => $2)" \
	" WHERE j.id = ANY (ARRAY(SELECT c.id FROM cand c)) RETURNING j.*)" \
	" SELECT * FROM taken ORDER BY priority DESC, id"
#define BATCH_LOCK " ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED"

/* any queue: the first $3 entries of the ready index */
static PQStatement stmt_batch_any = PQ_STATEMENT_GENERIC(
	BATCH_PREFIX "SELECT id FROM procq.jobs WHERE " PQ_READY_COND BATCH_LOCK
	BATCH_SUFFIX,
	3, TEXTOID, INT4OID, INT4OID);

/* one queue $4: its ready index */
static PQStatement stmt_batch_queue = PQ_STATEMENT_GENERIC(
	BATCH_PREFIX "SELECT id FROM procq.jobs WHERE " PQ_READY_COND
	" AND queue = $4" BATCH_LOCK BATCH_SUFFIX,
	4, TEXTOID, INT4OID, INT4OID, TEXTOID);

/*
 * Several queues or tasks: a first look at the best $3 entries of each one's
 * ready index, without locking, says how many of the batch each gives (its
 * quota); then each one's quota is locked in its index, skipping what
 * others hold.  Locking the best $3 of every queue and taking the best $3
 * of those would keep the surplus locked, and hidden from other fetchers,
 * until our transaction ends.  (When another fetcher takes a queue's jobs
 * at the same instant, that queue's quota is filled with its next ones.)
 */
#define BATCH_QUOTA(list, col, filter) \
	"WITH peek AS (SELECT c.grp FROM (SELECT DISTINCT g FROM unnest(" list ") AS g) l" \
	"  CROSS JOIN LATERAL (SELECT " col " AS grp, priority, id FROM procq.jobs" \
	"   WHERE " PQ_READY_COND " AND " col " = l.g" filter \
	"   ORDER BY priority DESC, id LIMIT $3) c" \
	"  ORDER BY c.priority DESC, c.id LIMIT $3)," \
	" quota AS (SELECT grp, count(*) AS k FROM peek GROUP BY grp)," \
	" cand AS MATERIALIZED (SELECT c.id FROM quota CROSS JOIN LATERAL" \
	"  (SELECT id FROM procq.jobs WHERE " PQ_READY_COND " AND " col " = quota.grp" filter \
	"   ORDER BY priority DESC, id LIMIT quota.k FOR UPDATE SKIP LOCKED) c"

/* the queues of $4 */
static PQStatement stmt_batch_queues = PQ_STATEMENT_GENERIC(
	BATCH_QUOTA("$4::text[]", "queue", "") BATCH_SUFFIX,
	4, TEXTOID, INT4OID, INT4OID, TEXTARRAYOID);

/* one task $5, in the queues of $4 (NULL: any): its ready index */
static PQStatement stmt_batch_task = PQ_STATEMENT_GENERIC(
	BATCH_PREFIX "SELECT id FROM procq.jobs WHERE " PQ_READY_COND
	" AND task = $5 AND ($4::text[] IS NULL OR queue = ANY ($4))"
	BATCH_LOCK BATCH_SUFFIX,
	5, TEXTOID, INT4OID, INT4OID, TEXTARRAYOID, TEXTOID);

/* the tasks of $5, in the queues of $4 (NULL: any) */
static PQStatement stmt_batch_tasks = PQ_STATEMENT_GENERIC(
	BATCH_QUOTA("$5::text[]", "task", " AND ($4::text[] IS NULL OR queue = ANY ($4))")
	BATCH_SUFFIX,
	5, TEXTOID, INT4OID, INT4OID, TEXTARRAYOID, TEXTARRAYOID);

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

/*
 * promote_due_up_to makes up to limit jobs whose scheduled time has come
 * fetchable; with notify, the queues of those that became ready are
 * notified.
 */
static void
promote_due_up_to(int limit, bool notify)
{
	Datum		v[1] = {Int32GetDatum(limit)};
	int			npromoted;
	bool		isnull;

	/*
	 * Nothing due is the common case.  A job that falls due right after the
	 * probe is promoted by the next fetch, as it would be had it fallen due
	 * right after the UPDATE.
	 */
	if (pq_exec(&stmt_any_due, NULL, NULL, 1) == 0)
		return;
	npromoted = pq_exec(&stmt_promote_due, v, NULL, 0);
	if (!notify)
		return;
	for (int i = 0; i < npromoted; i++)
		if (DatumGetBool(pq_get_attr(i, 2, &isnull)))
			pq_notify_ready(pq_get_text(i, 1));
}

/*
 * pq_promote_due makes up to ten jobs whose scheduled time has come
 * fetchable, so that the ready indexes never hold jobs of the future; with
 * notify, the queues of those that became ready are notified.
 */
void
pq_promote_due(bool notify)
{
	promote_due_up_to(10, notify);
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

/* A text[] filter argument: absent (NULL) or its elements. */
typedef struct TextFilter
{
	ArrayType  *array;			/* NULL: no filter */
	Datum	   *elems;
	int			n;
} TextFilter;

/*
 * filter_arg reads the text[] argument argno, named name, into *f; an
 * absent argument (NULL, or not passed to a 1.0 declaration) is no filter.
 * NULL elements are an error.
 */
static void
filter_arg(FunctionCallInfo fcinfo, int argno, const char *name, TextFilter *f)
{
	bool	   *nulls;

	f->array = NULL;
	f->elems = NULL;
	f->n = -1;
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return;
	f->array = PG_GETARG_ARRAYTYPE_P(argno);
	deconstruct_array(f->array, TEXTOID, -1, false, TYPALIGN_INT,
					  &f->elems, &nulls, &f->n);
	for (int i = 0; i < f->n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", name),
					 errhint("Pass NULL instead of an array to fetch from every %s.",
							 strcmp(name, "queues") == 0 ? "queue" : "task")));
}

/*
 * fetch_batch takes up to n ready jobs of the given queues and tasks (a
 * filter with n < 0 is none; neither is empty) for worker (NULL: "backend
 * <pid>") and returns how many; the rows, in fetch order, are in
 * SPI_tuptable.  With tasks, the per-task ready index is read; else the
 * per-queue one or the global one.
 */
static int
fetch_batch(int n, TextFilter *queues, TextFilter *tasks, Datum worker, bool worker_null)
{
	Datum		v[5];
	char		nulls[5] = {worker_null ? 'n' : ' ', ' ', ' ', ' ', ' '};
	PQStatement *stmt;

	v[0] = worker;
	v[1] = Int32GetDatum(pq_lease_duration);
	v[2] = Int32GetDatum(n);
	if (tasks->n >= 0)
	{
		v[3] = queues->array ? PointerGetDatum(queues->array) : (Datum) 0;
		nulls[3] = queues->array ? ' ' : 'n';
		if (tasks->n == 1)
		{
			v[4] = tasks->elems[0];
			stmt = &stmt_batch_task;
		}
		else
		{
			v[4] = PointerGetDatum(tasks->array);
			stmt = &stmt_batch_tasks;
		}
	}
	else if (queues->n < 0)
		stmt = &stmt_batch_any;
	else if (queues->n == 1)
	{
		v[3] = queues->elems[0];
		stmt = &stmt_batch_queue;
	}
	else
	{
		v[3] = PointerGetDatum(queues->array);
		stmt = &stmt_batch_queues;
	}
	return pq_exec(stmt, v, nulls, 0);
}

/*
 * procq.fetch_job(queues text[], worker text, tasks text[]) returns setof
 * procq.jobs
 *
 * Returns zero or one job, now doing: the best ready job of the given
 * queues and tasks (NULL: of any).
 */
Datum
procq_fetch_job(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		v[3];
	char		n[3] = {' ', ' ', ' '};
	TextFilter	queues;
	TextFilter	tasks;
	bool		found = false;

	InitMaterializedSRF(fcinfo, 0);

	v[0] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	n[0] = PG_ARGISNULL(1) ? 'n' : ' ';
	v[1] = Int32GetDatum(pq_lease_duration);

	filter_arg(fcinfo, 0, "queues", &queues);
	filter_arg(fcinfo, 2, "tasks", &tasks);

	/* An empty list of queues or tasks fetches nothing. */
	if (queues.n == 0 || tasks.n == 0)
		return (Datum) 0;

	pq_connect();
	pq_promote_due(true);

	if (tasks.n > 0)
		found = fetch_batch(1, &queues, &tasks, v[0], n[0] == 'n') == 1;
	else if (queues.n < 0)
		found = pq_exec(&stmt_fetch_any, v, n, 1) == 1;
	else if (queues.n == 1)
	{
		v[2] = queues.elems[0];
		found = pq_exec(&stmt_fetch_one_queue, v, n, 1) == 1;
	}
	else
		found = fetch_from_queues(queues.array, v, n);
	if (found)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[0]);

	pq_finish();
	return (Datum) 0;
}

/*
 * procq.fetch_jobs(n integer, queues text[], worker text, tasks text[])
 * returns setof procq.jobs
 *
 * Takes up to n ready jobs of the given queues and tasks (NULL: of any)
 * in one statement, under fetch_job's rules, and returns them in fetch
 * order (highest priority, then lowest id).
 */
Datum
procq_fetch_jobs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		n;
	TextFilter	queues;
	TextFilter	tasks;
	int			ntaken;

	InitMaterializedSRF(fcinfo, 0);

	pq_require_arg(fcinfo, 0, "n");
	n = PG_GETARG_INT32(0);
	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be at least 1"),
				 errdetail("n was %d.", n)));
	filter_arg(fcinfo, 1, "queues", &queues);
	filter_arg(fcinfo, 3, "tasks", &tasks);
	if (queues.n == 0 || tasks.n == 0)
		return (Datum) 0;

	pq_connect();
	/* enough due jobs for the batch (and at least what fetch_job promotes) */
	promote_due_up_to(Max(n, 10), true);
	ntaken = fetch_batch(n, &queues, &tasks,
						 PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2),
						 PG_ARGISNULL(2));
	for (int i = 0; i < ntaken; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	pq_finish();
	return (Datum) 0;
}
