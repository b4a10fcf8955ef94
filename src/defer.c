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
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "args.h"
#include "authz.h"
#include "cascade.h"
#include "defer.h"
#include "events.h"
#include "jobs.h"
#include "locks.h"
#include "notify.h"
#include "procq.h"
#include "spi_exec.h"
#include "workflows.h"

PG_FUNCTION_INFO_V1(procq_defer);
PG_FUNCTION_INFO_V1(procq_defer_jobs);

/*
 * The INSERT of one job, completed by INSERT_JOB_ON_CONFLICT or not.  The
 * columns of workflows and conditions (issue 9) come as extra columns and
 * values: procq 1.0's table, which this library serves until ALTER
 * EXTENSION procq UPDATE, has none of them, and its statements leave their
 * parameters unused.
 */
#define INSERT_JOB_WITH(id_column, extra_columns, open, extra_values, close) \
	"INSERT INTO procq.jobs (" id_column "queue, task, args, status, priority," \
	" scheduled_at, max_attempts, lock, queueing_lock, pending_parents," \
	" lock_blocked, delayed, cancelled_by, error, finished_at, deferred_by" \
	extra_columns ")" \
	open "$1, $2, $3, $4::procq.job_status, $5, $6, $7, $8, $9, $10," \
	" $11 AND $4 = 'todo'," \
	" $4 = 'todo' AND $6 IS NOT NULL AND $6 > statement_timestamp()," \
	" $12, $13, CASE WHEN $4 = 'todo' THEN NULL ELSE clock_timestamp() END," \
	" $14" extra_values close
/*
 * issue 9, workflows: the id is drawn in the statement itself, so that a job
 * that starts its own workflow ($17 NULL) gets its own id as workflow_id
 * without the BEFORE INSERT trigger jobs_workflow_default firing.
 */
#define INSERT_JOB \
	INSERT_JOB_WITH("id, ", ", run_after, failed_parents, workflow_id, step_key", \
					" OVERRIDING SYSTEM VALUE SELECT n.id, ", \
					", $15, $16, coalesce($17, n.id), $18", \
					" FROM (SELECT pg_catalog.nextval('procq.jobs_id_seq'::regclass) AS id) n")
#define INSERT_JOB_1_0 INSERT_JOB_WITH("", "", " VALUES (", "", ")")
#define INSERT_JOB_ON_CONFLICT \
	" ON CONFLICT (queueing_lock)" \
	" WHERE status = 'todo' AND queueing_lock IS NOT NULL DO NOTHING"
#define INSERT_JOB_RETURNING " RETURNING id, " PQ_READY_COND
#define INSERT_JOB_ARGS \
	18, TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT4OID, TIMESTAMPTZOID, \
	INT4OID, TEXTOID, TEXTOID, INT4OID, BOOLOID, INT8OID, TEXTOID, REGROLEOID, \
	TEXTOID, INT4OID, INT8OID, TEXTOID

/* PQ_STATEMENT with the parameter list in one macro (expanded first) */
#define PQ_STATEMENT_V(sql, ...) PQ_STATEMENT(sql, __VA_ARGS__)

/* a job with a queueing_lock: none if another todo job holds it */
static PQStatement stmt_insert_job = PQ_STATEMENT_V(
	INSERT_JOB INSERT_JOB_ON_CONFLICT INSERT_JOB_RETURNING, INSERT_JOB_ARGS);
static PQStatement stmt_insert_job_1_0 = PQ_STATEMENT_V(
	INSERT_JOB_1_0 INSERT_JOB_ON_CONFLICT INSERT_JOB_RETURNING, INSERT_JOB_ARGS);

/*
 * a job without one ($9 is NULL): it cannot conflict, and a plain INSERT
 * saves the speculative insertion (a lock and a WAL record per job)
 */
static PQStatement stmt_insert_job_plain = PQ_STATEMENT_V(
	INSERT_JOB INSERT_JOB_RETURNING, INSERT_JOB_ARGS);
static PQStatement stmt_insert_job_plain_1_0 = PQ_STATEMENT_V(
	INSERT_JOB_1_0 INSERT_JOB_RETURNING, INSERT_JOB_ARGS);

static PQStatement stmt_insert_deps = PQ_STATEMENT(
	"INSERT INTO procq.job_dependencies (job_id, depends_on)"
	" SELECT $1, p FROM unnest($2::bigint[]) AS p",
	2, INT8OID, INT8ARRAYOID);

/* ids for a batch, in ascending order */
static PQStatement stmt_draw_ids = PQ_STATEMENT(
	"SELECT nextval('procq.jobs_id_seq'::regclass) FROM generate_series(1, $1)",
	1, INT4OID);

/* of the lock values $1, those whose lock queue has a live job */
static PQStatement stmt_busy_locks = PQ_STATEMENT(
	"SELECT DISTINCT lock FROM procq.jobs WHERE lock = ANY ($1)"
	" AND status IN ('todo', 'doing') ORDER BY lock",
	1, TEXTARRAYOID);

static PQStatement stmt_queueing_holders = PQ_STATEMENT(
	"SELECT queueing_lock, id FROM procq.jobs"
	" WHERE queueing_lock = ANY ($1) AND status = 'todo'"
	" ORDER BY queueing_lock",
	1, TEXTARRAYOID);

/*
 * The jobs of a batch, one array element each; a job with an error is
 * inserted cancelled.  Returns the queues in which a job became ready.
 */
#define INSERT_BATCH_WITH(extra_columns, extra_values) \
	"WITH ins AS (INSERT INTO procq.jobs (id, queue, task, args, status," \
	"  priority, scheduled_at, max_attempts, lock, queueing_lock," \
	"  pending_parents, lock_blocked, delayed, cancelled_by, error," \
	"  finished_at, deferred_by" extra_columns ")" \
	" OVERRIDING SYSTEM VALUE" \
	" SELECT u.id, u.queue, u.task, u.args," \
	"  CASE WHEN u.error IS NULL THEN 'todo'" \
	"   ELSE 'cancelled' END::procq.job_status," \
	"  u.priority, u.scheduled_at, u.max_attempts, u.lock, u.qlock," \
	"  u.pending, u.blocked," \
	"  u.error IS NULL AND u.scheduled_at IS NOT NULL" \
	"   AND u.scheduled_at > statement_timestamp()," \
	"  u.cancelled_by, u.error," \
	"  CASE WHEN u.error IS NULL THEN NULL ELSE clock_timestamp() END," \
	"  $18" extra_values \
	" FROM unnest($1::bigint[], $2::text[], $3::text[], $4::jsonb[]," \
	"  $5::int4[], $6::timestamptz[], $7::int4[], $8::text[], $9::text[]," \
	"  $10::int4[], $11::bool[], $12::bigint[], $13::text[], $14::text[]," \
	"  $15::int4[], $16::bigint[], $17::text[])" \
	"  AS u(id, queue, task, args, priority, scheduled_at, max_attempts," \
	"   lock, qlock, pending, blocked, cancelled_by, error, run_after, failed," \
	"   workflow_id, step_key)" \
	" RETURNING queue, " PQ_READY_COND " AS ready)" \
	" SELECT DISTINCT queue FROM ins WHERE ready"
#define INSERT_BATCH_ARGS \
	18, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, INT4ARRAYOID, \
	TIMESTAMPTZARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, \
	INT4ARRAYOID, BOOLARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, \
	INT4ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, REGROLEOID

/*
 * The jobs of a batch, one array element each; a job with an error is
 * inserted cancelled.  Returns the queues in which a job became ready.
 * (The 1.0 table has no columns of workflows and conditions: see
 * INSERT_JOB_WITH.)
 */
static PQStatement stmt_insert_batch = PQ_STATEMENT_V(
	INSERT_BATCH_WITH(", run_after, failed_parents, workflow_id, step_key",
					  ", u.run_after, u.failed, u.workflow_id, u.step_key"),
	INSERT_BATCH_ARGS);
static PQStatement stmt_insert_batch_1_0 = PQ_STATEMENT_V(
	INSERT_BATCH_WITH("", ""), INSERT_BATCH_ARGS);

static PQStatement stmt_insert_batch_deps = PQ_STATEMENT(
	"INSERT INTO procq.job_dependencies (job_id, depends_on)"
	" SELECT c, p FROM unnest($1::bigint[], $2::bigint[]) AS e(c, p)",
	2, INT8ARRAYOID, INT8ARRAYOID);

/*
 * The most dependency rows one call may insert.  Each costs a row lock on
 * its parent, a foreign key check and memory for the call's arrays, so a
 * call stays within memory and finishes; and counting them first keeps a
 * fan-out of many jobs over many parents from overflowing an int.
 */
#define PQ_MAX_DEPENDENCIES_PER_CALL 1000000

/*
 * What the parents of a job say about it (see the bookkeeping invariant in
 * cascade.c): for a 'success' job, pending counts the parents that have not
 * succeeded, for the others those that are not final; failed counts those
 * that failed or were cancelled.  failed_parent is the lowest of them, for
 * a 'success' job only (it is cancelled, blamed on that parent).
 */
typedef struct ParentCheck
{
	int32		pending;
	int32		failed;
	int64		failed_parent;	/* blame of a 'success' job, or 0 */
	const char *failed_how;		/* "failed" or "was cancelled" */
} ParentCheck;

/*
 * judge_parent adds one parent, in state 's'ucceeded, 'f'ailed,
 * 'c'ancelled or 'p'ending (todo or doing), to what check says about a
 * job with run_after.  Parents come in id order.
 */
static void
judge_parent(ParentCheck *check, PQRunAfter run_after, int64 parent, char state)
{
	if (state == 's')
		return;
	if (state == 'p')
	{
		check->pending++;
		return;
	}
	check->failed++;
	if (run_after != PQ_RUN_AFTER_SUCCESS)
		return;
	check->pending++;
	if (check->failed_parent == 0)
	{
		check->failed_parent = parent;
		check->failed_how = state == 'f' ? "failed" : "was cancelled";
	}
}

/*
 * parent_state reads a parent's status as judge_parent's state.
 */
static char
parent_state(const char *status)
{
	return strcmp(status, "succeeded") == 0 ? 's'
		: strcmp(status, "failed") == 0 ? 'f'
		: strcmp(status, "cancelled") == 0 ? 'c' : 'p';
}

/*
 * not_needed says whether a todo job with these parents can never run: a
 * 'failure' job whose parents are all final and all succeeded.  It is
 * inserted (or left) cancelled with PQ_ALL_SUCCEEDED_ERROR.
 */
static bool
not_needed(PQRunAfter run_after, int32 pending, int32 failed)
{
	return run_after == PQ_RUN_AFTER_FAILURE && pending == 0 && failed == 0;
}

/*
 * require_parent_for_failure refuses a 'failure' job without any parent:
 * it would wait for a parent to fail, and could never run.
 */
static void
require_parent_for_failure(PQRunAfter run_after, int nparents)
{
	if (run_after == PQ_RUN_AFTER_FAILURE && nparents == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a job with run_after 'failure' must depend on at least one job"),
				 errdetail("It runs only once one of its parents has ended without success; without parents it could never run."),
				 errhint("Pass depends_on, or use run_after 'success' or 'completion'.")));
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
	pq_check_name_length(spec->task, "task");
	pq_check_name_length(spec->queue, "queue");
	pq_check_name_length(spec->lock, "lock");
	pq_check_name_length(spec->queueing_lock, "queueing_lock");
}

/*
 * check_parents locks the parents of a job to insert FOR SHARE, in id
 * order, and reads their status: a parent that is finishing at this moment
 * holds a row lock that conflicts, so we wait for its transaction and then
 * see its final status, and a parent that finishes after us waits until
 * our dependency rows are committed and will find them.  Either way the
 * child is neither stranded nor released early.  A parent that does not
 * exist is an error.  The parents are judged by the job's run_after
 * (judge_parent).
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
		/* making a job depend on a job is acting on it */
		pq_require_job_access(found_id, DatumGetObjectId(pq_get_attr(row, 3, &isnull)));
		pstatus = pq_get_text(row, 2);
		row++;
		judge_parent(&check, spec->run_after, found_id, parent_state(pstatus));
	}
	return check;
}

static PQStatement stmt_child_run_after = PQ_STATEMENT(
	"SELECT status::text, run_after FROM procq.jobs WHERE id = $1",
	1, INT8OID);

static PQStatement stmt_child_for_update = PQ_STATEMENT(
	"SELECT status::text, run_after FROM procq.jobs WHERE id = $1"
	" FOR NO KEY UPDATE",
	1, INT8OID);

static PQStatement stmt_count_new_parents = PQ_STATEMENT(
	"UPDATE procq.jobs SET pending_parents = pending_parents + $2,"
	" failed_parents = failed_parents + $3 WHERE id = $1"
	" RETURNING queue, pending_parents, failed_parents, " PQ_READY_COND,
	3, INT8OID, INT4OID, INT4OID);

/* the status trigger cancels the descendants and moves the lock queue */
static PQStatement stmt_cancel_judged = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'cancelled', finished_at = clock_timestamp(),"
	" cancelled_by = $2, error = $3, lock_blocked = false, delayed = false"
	" WHERE id = $1 AND status = 'todo'",
	3, INT8OID, INT8OID, TEXTOID);

/*
 * pq_judge_new_parents judges new edges of an existing job child (procq
 * 1.1 only) to parents (sorted, without duplicates, none of them a parent
 * of child yet), as defer judges a new job's: the parents are locked FOR
 * SHARE in id order first (a missing one is 23503, one the caller may not
 * act on 42501), then the child's row; the child's pending_parents and
 * failed_parents count them by its run_after.  A todo child is then
 * cancelled when it is a 'success' job with a failed or cancelled parent
 * (blamed on the lowest; the status trigger cancels its descendants), or a
 * 'failure' job whose parents all succeeded (PQ_ALL_SUCCEEDED_ERROR), and
 * its queue is notified if it is ready.  A child that is not todo only has
 * its counters changed.  The caller inserts the dependency rows (before or
 * after: the counters do not read them) and has connected SPI.  Returns
 * whether the child was todo when its row was locked (after the parents'):
 * procq.add_dependencies refuses a child that is not (55000), and its
 * error rolls back the counters changed here.  A missing child is P0002.
 */
bool
pq_judge_new_parents(int64 child, const int64 *parents, int nparents)
{
	PQJobSpec	spec = {0};
	ParentCheck check;
	Datum		v[3];
	char		n[3] = {' ', ' ', ' '};
	bool		isnull;
	char	   *status;
	int32		pending;
	int32		failed;
	bool		ready;
	char	   *queue;

	v[0] = Int64GetDatum(child);
	spec.parents = (int64 *) parents;
	spec.nparents = nparents;

	/* the run_after first, without a row lock: it never changes */
	if (pq_exec(&stmt_child_run_after, v, NULL, 1) == 0)
		pq_job_not_found(child);
	spec.run_after = pq_run_after_from_text(cstring_to_text(pq_get_text(0, 2)));
	SPI_freetuptable(SPI_tuptable);

	check = nparents > 0 ? check_parents(&spec, pq_int8_array(spec.parents, nparents))
		: (ParentCheck) {0};

	v[0] = Int64GetDatum(child);
	if (pq_exec(&stmt_child_for_update, v, NULL, 1) == 0)
		pq_job_not_found(child);
	status = pq_get_text(0, 1);

	v[1] = Int32GetDatum(check.pending);
	v[2] = Int32GetDatum(check.failed);
	pq_exec(&stmt_count_new_parents, v, NULL, 1);
	queue = pq_get_text(0, 1);
	pending = DatumGetInt32(pq_get_attr(0, 2, &isnull));
	failed = DatumGetInt32(pq_get_attr(0, 3, &isnull));
	ready = DatumGetBool(pq_get_attr(0, 4, &isnull));

	if (strcmp(status, "todo") != 0)
		return false;
	if (check.failed_parent != 0)
	{
		v[1] = Int64GetDatum(check.failed_parent);
		v[2] = CStringGetTextDatum(psprintf("parent job %lld %s",
											(long long) check.failed_parent,
											check.failed_how));
		pq_exec(&stmt_cancel_judged, v, NULL, 0);
	}
	else if (not_needed(spec.run_after, pending, failed))
	{
		n[1] = 'n';
		v[1] = (Datum) 0;
		v[2] = CStringGetTextDatum(PQ_ALL_SUCCEEDED_ERROR);
		pq_exec(&stmt_cancel_judged, v, n, 0);
	}
	else if (ready)
		pq_notify_ready(queue);
	return true;
}

/*
 * check_dependency_count refuses a call that would insert more than
 * PQ_MAX_DEPENDENCIES_PER_CALL dependency rows (count: how many parents its
 * jobs name, in all), before anything is locked or inserted.
 */
static void
check_dependency_count(int64 count)
{
	if (count > PQ_MAX_DEPENDENCIES_PER_CALL)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a call may insert at most %d dependency rows",
						PQ_MAX_DEPENDENCIES_PER_CALL),
				 errdetail("Its jobs name %lld parents in all.", (long long) count),
				 errhint("Defer the jobs in several calls, or let them depend on one job that "
						 "depends on all the parents.")));
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
 * issue 9, workflows: single_job_workflow returns the workflow that a job
 * of procq.defer joins, or 0 for a workflow of its own (the insert gives
 * it its own id): the workflow_id it names (which must exist and be the
 * caller's to act on), else the one all its parents share.  The parents
 * (parents_array, (Datum) 0 for none) are locked already, so their
 * workflow cannot change.  On procq 1.0's table nothing has a workflow.
 */
static int64
single_job_workflow(PQJobSpec *spec, Datum parents_array)
{
	if (!pq_schema_has_workflows())
		return 0;
	if (spec->workflow_id > 0)
	{
		pq_check_workflow(spec->workflow_id);
		return spec->workflow_id;
	}
	if (spec->nparents > 0)
		return pq_parents_workflow(parents_array);
	return 0;
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
	Datum		v[18];
	char		n[18];
	PQStatement *insert;
	int64		job_id;
	int64		workflow_id;
	bool		isnull;
	bool		ready;

	check_dependency_count(spec->nparents);
	require_parent_for_failure(spec->run_after, spec->nparents);

	/* The lock queue's advisory lock comes before any row lock. */
	if (spec->lock != NULL)
		pq_lock_key(text_to_cstring(spec->lock));

	if (spec->nparents > 0)
	{
		parents_array = pq_int8_array(spec->parents, spec->nparents);
		parents = check_parents(spec, parents_array);
	}
	/* issue 9, workflows: */
	workflow_id = single_job_workflow(spec, parents_array);

	if (parents.failed_parent != 0)
	{
		status = "cancelled";
		error = psprintf("parent job %lld %s", (long long) parents.failed_parent,
						 parents.failed_how);
	}
	else if (not_needed(spec->run_after, parents.pending, parents.failed))
	{
		status = "cancelled";
		error = PQ_ALL_SUCCEEDED_ERROR;
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
	v[14] = CStringGetTextDatum(pq_run_after_name(spec->run_after));
	v[15] = Int32GetDatum(parents.failed);
	v[16] = Int64GetDatum(workflow_id);
	n[16] = workflow_id != 0 ? ' ' : 'n';
	v[17] = PointerGetDatum(spec->step_key);
	n[17] = spec->step_key ? ' ' : 'n';

	if (pq_schema_has_workflows())
		insert = spec->queueing_lock ? &stmt_insert_job : &stmt_insert_job_plain;
	else
		insert = spec->queueing_lock ? &stmt_insert_job_1_0 : &stmt_insert_job_plain_1_0;
	if (pq_events_run_as(PQ_EVENT_DEFERRED, insert, v, n) == 0)
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
 *			   max_attempts, lock, queueing_lock, run_after, workflow_id)
 *	 returns bigint
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
	/* procq 1.0's declaration has neither (see INSERT_JOB_WITH) */
	if (PG_NARGS() > 10)
	{
		pq_require_arg(fcinfo, 9, "run_after");
		spec.run_after = pq_check_run_after(PG_GETARG_TEXT_PP(9), "run_after");
		spec.workflow_id = PG_ARGISNULL(10) ? 0 : pq_workflow_arg(PG_GETARG_INT64(10));
	}

	pq_validate_spec(&spec);

	pq_connect();
	job_id = pq_defer_job(&spec);
	pq_finish();

	PG_RETURN_INT64(job_id);
}

/*
 * A parent that already exists, as pq_defer_batch found it.  Its first
 * field is its id, so that a pointer to an id can be its bsearch key.
 */
typedef struct FoundParent
{
	int64		id;
	char		state;			/* 's'ucceeded, 'f'ailed, 'c'ancelled, 'p'ending */
} FoundParent;

/*
 * A lock value of a batch, and whether its queue has a live job by now.
 * (This and QlockState start with the value: a pointer to a C string
 * pointer is their bsearch key.)
 */
typedef struct LockState
{
	char	   *value;
	bool		busy;
} LockState;

/* A queueing lock of a batch, and the todo job holding it (0: none). */
typedef struct QlockState
{
	char	   *value;
	int64		holder;
} QlockState;

/*
 * cmp_cstring_ptr orders C strings (through pointers) for qsort.
 */
static int
cmp_cstring_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * cmp_int64_asc orders int64 values for qsort and bsearch.
 */
static int
cmp_int64_asc(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * cmp_int_asc orders int values for qsort.
 */
static int
cmp_int_asc(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

/*
 * distinct_texts collects the distinct non-NULL values of n text fields
 * (got from the batch by get), sorted, as C strings; returns how many.
 */
static int
distinct_texts(PQBatchJob *jobs, int n, text *(*get) (PQBatchJob *), char ***out)
{
	char	  **vals = palloc(sizeof(char *) * Max(n, 1));
	int			nvals = 0;
	int			ndistinct = 0;

	for (int i = 0; i < n; i++)
	{
		text	   *t = get(&jobs[i]);

		if (t != NULL)
			vals[nvals++] = text_to_cstring(t);
	}
	qsort(vals, nvals, sizeof(char *), cmp_cstring_ptr);
	for (int i = 0; i < nvals; i++)
		if (ndistinct == 0 || strcmp(vals[ndistinct - 1], vals[i]) != 0)
			vals[ndistinct++] = vals[i];
	*out = vals;
	return ndistinct;
}

/* The lock and queueing lock of a batch job, for distinct_texts. */
static text *
lock_of(PQBatchJob *job)
{
	return job->spec->lock;
}

static text *
qlock_of(PQBatchJob *job)
{
	return job->spec->queueing_lock;
}

/*
 * cstring_array builds a text[] Datum of n C strings.
 */
static Datum
cstring_array(char **vals, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(vals[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * find_parents locks the existing parents named by the batch FOR SHARE
 * (in id order, see check_parents for why) and returns them, sorted by
 * id, with their state; *nfound is how many exist.
 */
static FoundParent *
find_parents(PQBatchJob *jobs, int n, int *nfound)
{
	/* at most PQ_MAX_DEPENDENCIES_PER_CALL in all (check_dependency_count) */
	int			total = 0;
	int64	   *ids;
	FoundParent *found;
	int			nrows;

	for (int i = 0; i < n; i++)
		total += jobs[i].spec->nparents;
	*nfound = 0;
	if (total == 0)
		return NULL;
	ids = palloc(sizeof(int64) * total);
	total = 0;
	for (int i = 0; i < n; i++)
	{
		/* parents is NULL for a job without any (memcpy's NULL is UB) */
		if (jobs[i].spec->nparents > 0)
			memcpy(ids + total, jobs[i].spec->parents, sizeof(int64) * jobs[i].spec->nparents);
		total += jobs[i].spec->nparents;
	}
	pq_sort_unique_ids(ids, &total);

	nrows = pq_lock_jobs_for_share(pq_int8_array(ids, total));
	found = palloc(sizeof(FoundParent) * Max(nrows, 1));
	for (int r = 0; r < nrows; r++)
	{
		bool		isnull;
		char	   *st = pq_get_text(r, 2);

		found[r].id = DatumGetInt64(pq_get_attr(r, 1, &isnull));
		/* making a job depend on a job is acting on it */
		pq_require_job_access(found[r].id, DatumGetObjectId(pq_get_attr(r, 3, &isnull)));
		found[r].state = strcmp(st, "succeeded") == 0 ? 's'
			: strcmp(st, "failed") == 0 ? 'f'
			: strcmp(st, "cancelled") == 0 ? 'c' : 'p';
	}
	*nfound = nrows;
	return found;
}

/*
 * issue 9, workflows.  What batch_job_workflow last found the workflow of
 * a list of parents to be (the jobs of one defer_jobs call share theirs).
 */
typedef struct WorkflowMemo
{
	int64	   *parents;		/* NULL: nothing found yet */
	int			nparents;
	int64		workflow_id;	/* 0: they have no workflow in common */
} WorkflowMemo;

/*
 * check_batch_workflows checks each workflow that jobs of the batch name
 * (pq_check_workflow), each once in a row, after their parents were
 * locked.  On procq 1.0's table nothing names one (the functions'
 * declarations there have no workflow_id).
 */
static void
check_batch_workflows(PQBatchJob *jobs, int n)
{
	int64		checked = 0;

	if (!pq_schema_has_workflows())
		return;
	for (int i = 0; i < n; i++)
	{
		int64		w = jobs[i].spec->workflow_id;

		if (w > 0 && w != checked)
		{
			pq_check_workflow(w);
			checked = w;
		}
	}
}

/*
 * batch_job_workflow returns the workflow of job i of a batch whose ids
 * have been drawn: the one it names; the batch's first job's for a step of
 * defer_workflow (PQ_WORKFLOW_OF_BATCH); else the one all its parents
 * share (they are locked); else its own.
 */
static int64
batch_job_workflow(PQBatchJob *jobs, int i, int64 *ids, WorkflowMemo *memo)
{
	PQJobSpec  *spec = jobs[i].spec;

	if (spec->workflow_id == PQ_WORKFLOW_OF_BATCH)
		return ids[0];
	if (spec->workflow_id > 0)
		return spec->workflow_id;
	if (spec->nparents == 0 || !pq_schema_has_workflows())
		return ids[i];
	if (memo->parents != spec->parents || memo->nparents != spec->nparents)
	{
		memo->parents = spec->parents;
		memo->nparents = spec->nparents;
		memo->workflow_id = pq_parents_workflow(pq_int8_array(spec->parents, spec->nparents));
	}
	return memo->workflow_id != 0 ? memo->workflow_id : ids[i];
}

/*
 * draw_ids draws n ids from the jobs' sequence, in one statement, into
 * ids, ascending.
 */
static void
draw_ids(int n, int64 *ids)
{
	Datum		v[1] = {Int32GetDatum(n)};
	bool		isnull;

	if (n == 0)
		return;
	if (pq_exec(&stmt_draw_ids, v, NULL, 0) != n)
		elog(ERROR, "procq: could not draw %d job ids", n);
	for (int i = 0; i < n; i++)
		ids[i] = DatumGetInt64(pq_get_attr(i, 1, &isnull));
	qsort(ids, n, sizeof(int64), cmp_int64_asc);
}

/*
 * pq_defer_batch inserts the n validated jobs of jobs[] and their
 * dependency rows, and sets each one's id (ascending in batch order).  A
 * job's batch_parents must come before it.  While a job is being checked,
 * *current is its index (else -1), for the caller's error context.  The
 * caller has connected SPI.
 */
void
pq_defer_batch(PQBatchJob *jobs, int n, int *current)
{
	char	  **locks;
	int			nlocks = distinct_texts(jobs, n, lock_of, &locks);
	char	  **qlocks;
	int			nqlocks = distinct_texts(jobs, n, qlock_of, &qlocks);
	LockState  *lockst = palloc(sizeof(LockState) * Max(nlocks, 1));
	QlockState *qlockst = palloc(sizeof(QlockState) * Max(nqlocks, 1));
	FoundParent *found;
	int			nfound;
	char	   *state = palloc(sizeof(char) * Max(n, 1));
	int64	   *ids;
	int64	   *blame;
	int			nedges = 0;
	int			e = 0;
	Datum		v[18];
	char		nulls[18];
	Datum	   *d[17];
	bool	   *dn[17];
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int64	   *edge_child;
	int64	   *edge_parent;
	int			nqueues;
	bool		isnull;
	WorkflowMemo wf_memo = {0};

	*current = -1;
	if (n == 0)
		return;
	{
		int64		count = 0;

		for (int i = 0; i < n; i++)
			count += (int64) jobs[i].spec->nparents + jobs[i].nbatch_parents;
		check_dependency_count(count);
	}

	/* advisory locks before any row lock, in a fixed order */
	for (int i = 0; i < nlocks; i++)
	{
		pq_lock_key(locks[i]);
		lockst[i].value = locks[i];
		lockst[i].busy = false;
	}
	found = find_parents(jobs, n, &nfound);
	check_batch_workflows(jobs, n);	/* issue 9, workflows */
	for (int i = 0; i < nqlocks; i++)
	{
		pq_lock_queueing_key(qlocks[i], false);
		qlockst[i].value = qlocks[i];
		qlockst[i].holder = 0;
	}

	/* which lock queues are busy, which queueing locks are held */
	if (nlocks > 0)
	{
		int			nbusy;

		v[0] = cstring_array(locks, nlocks);
		nbusy = pq_exec(&stmt_busy_locks, v, NULL, 0);
		for (int r = 0; r < nbusy; r++)
		{
			char	   *busy = pq_get_text(r, 1);
			LockState  *ls = bsearch(&busy, lockst, nlocks, sizeof(LockState),
									 cmp_cstring_ptr);

			if (ls != NULL)
				ls->busy = true;
		}
	}
	if (nqlocks > 0)
	{
		int			nheld;

		v[0] = cstring_array(qlocks, nqlocks);
		nheld = pq_exec(&stmt_queueing_holders, v, NULL, 0);
		for (int r = 0; r < nheld; r++)
		{
			char	   *held = pq_get_text(r, 1);
			QlockState *qs = bsearch(&held, qlockst, nqlocks, sizeof(QlockState),
									 cmp_cstring_ptr);

			if (qs != NULL)
				qs->holder = DatumGetInt64(pq_get_attr(r, 2, &isnull));
		}
	}

	for (int c = 0; c < 17; c++)
	{
		d[c] = palloc(sizeof(Datum) * n);
		dn[c] = palloc0(sizeof(bool) * n);
	}
	ids = palloc(sizeof(int64) * n);
	blame = palloc(sizeof(int64) * n);

	/*
	 * Each job's bookkeeping, in batch order.  Ids are drawn afterwards (a
	 * batch job's id is only needed for what a later job says about it):
	 * existing parents have lower ids than any job of the batch, and the
	 * batch's ids ascend in batch order.  A batch job as a parent or holder
	 * is written -1 - its index until then.  An error draws the ids that
	 * one defer per job would have used up to it, so that ids go on as
	 * they did before batches.
	 */
	for (int i = 0; i < n; i++)
	{
		PQBatchJob *job = &jobs[i];
		PQJobSpec  *spec = job->spec;
		ParentCheck check = {0};
		int64		failed_parent;
		bool		blocked = false;

		*current = i;

		/*
		 * state[i]: 't' todo, else cancelled: because of the parent it is
		 * blamed on (the lowest failed or cancelled one, for a 'success'
		 * job), which 'F'ailed or was 'C'ancelled, or because it is a
		 * 'failure' job whose parents all succeeded ('A').  Parents are
		 * sorted, existing ones first; a cancelled job of the batch counts
		 * as a cancelled parent.
		 */
		state[i] = 't';
		if (spec->nparents + job->nbatch_parents == 0 &&
			spec->run_after == PQ_RUN_AFTER_FAILURE)
		{
			draw_ids(i, ids);
			require_parent_for_failure(spec->run_after, 0);
		}
		for (int p = 0; p < spec->nparents; p++)
		{
			FoundParent *fp = bsearch(&spec->parents[p], found, nfound,
									  sizeof(FoundParent), cmp_int64_asc);

			if (fp == NULL)
			{
				draw_ids(i, ids);
				ereport(ERROR,
						(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
						 errmsg("job %lld named in depends_on does not exist",
								(long long) spec->parents[p])));
			}
			judge_parent(&check, spec->run_after, fp->id, fp->state);
		}
		qsort(job->batch_parents, job->nbatch_parents, sizeof(int), cmp_int_asc);
		for (int p = 0; p < job->nbatch_parents; p++)
		{
			int			b = job->batch_parents[p];

			Assert(b < i);
			if (p > 0 && job->batch_parents[p - 1] == b)
				continue;
			nedges++;
			/* a job of the batch: its id is -1 - b until drawn */
			judge_parent(&check, spec->run_after, -1 - b, state[b] == 't' ? 'p' : 'c');
		}
		nedges += spec->nparents;
		failed_parent = check.failed_parent;
		if (failed_parent != 0)
			state[i] = strcmp(check.failed_how, "failed") == 0 ? 'F' : 'C';
		else if (not_needed(spec->run_after, check.pending, check.failed))
			state[i] = 'A';
		blame[i] = failed_parent;

		if (state[i] == 't' && spec->lock != NULL)
		{
			char	   *lock = text_to_cstring(spec->lock);
			LockState  *ls = bsearch(&lock, lockst, nlocks, sizeof(LockState),
									 cmp_cstring_ptr);

			blocked = ls->busy;
			ls->busy = true;
		}
		if (state[i] == 't' && spec->queueing_lock != NULL)
		{
			char	   *qlock = text_to_cstring(spec->queueing_lock);
			QlockState *qs = bsearch(&qlock, qlockst, nqlocks, sizeof(QlockState),
									 cmp_cstring_ptr);

			if (qs->holder != 0)
			{
				int64		holder;

				draw_ids(i + 1, ids);
				holder = qs->holder > 0 ? qs->holder : ids[-1 - qs->holder];
				ereport(ERROR,
						(errcode(ERRCODE_UNIQUE_VIOLATION),
						 errmsg("a todo job with queueing_lock \"%s\" already exists", qlock),
						 errdetail("Job %lld holds that queueing_lock.", (long long) holder),
						 errhint("Only one job per queueing_lock may wait in todo; defer again once it has started.")));
			}
			qs->holder = -1 - i;
		}

		d[9][i] = Int32GetDatum(check.pending);
		d[10][i] = BoolGetDatum(blocked);
		d[14][i] = Int32GetDatum(check.failed);
	}
	*current = -1;

	/* the ids, drawn in one statement, and what depends on them */
	draw_ids(n, ids);
	for (int i = 0; i < n; i++)
	{
		PQJobSpec  *spec = jobs[i].spec;
		int64		parent = blame[i] >= 0 ? blame[i] : ids[-1 - blame[i]];

		jobs[i].id = ids[i];
		d[0][i] = Int64GetDatum(ids[i]);
		d[1][i] = PointerGetDatum(spec->queue);
		d[2][i] = PointerGetDatum(spec->task);
		d[3][i] = PointerGetDatum(spec->args);
		d[4][i] = Int32GetDatum(spec->priority);
		d[5][i] = TimestampTzGetDatum(spec->scheduled_at);
		dn[5][i] = !spec->has_scheduled_at;
		d[6][i] = Int32GetDatum(spec->max_attempts);
		d[7][i] = PointerGetDatum(spec->lock);
		dn[7][i] = spec->lock == NULL;
		d[8][i] = PointerGetDatum(spec->queueing_lock);
		dn[8][i] = spec->queueing_lock == NULL;
		d[11][i] = Int64GetDatum(parent);
		dn[11][i] = blame[i] == 0;
		if (blame[i] != 0)
			d[12][i] = CStringGetTextDatum(psprintf("parent job %lld %s", (long long) parent,
													state[i] == 'F' ? "failed" : "was cancelled"));
		else if (state[i] == 'A')
			d[12][i] = CStringGetTextDatum(PQ_ALL_SUCCEEDED_ERROR);
		dn[12][i] = state[i] == 't';
		d[13][i] = CStringGetTextDatum(pq_run_after_name(spec->run_after));
		d[15][i] = Int64GetDatum(batch_job_workflow(jobs, i, ids, &wf_memo));
		d[16][i] = PointerGetDatum(spec->step_key);
		dn[16][i] = spec->step_key == NULL;
	}

	/* one INSERT for the jobs */
	{
		static const Oid elemtypes[17] = {INT8OID, TEXTOID, TEXTOID, JSONBOID,
			INT4OID, TIMESTAMPTZOID, INT4OID, TEXTOID, TEXTOID, INT4OID,
		BOOLOID, INT8OID, TEXTOID, TEXTOID, INT4OID, INT8OID, TEXTOID};

		for (int c = 0; c < 17; c++)
		{
			int16		typlen;
			bool		typbyval;
			char		typalign;

			get_typlenbyvalalign(elemtypes[c], &typlen, &typbyval, &typalign);
			v[c] = PointerGetDatum(construct_md_array(d[c], dn[c], 1, dims, lbs,
													  elemtypes[c], typlen,
													  typbyval, typalign));
		}
	}
	v[17] = ObjectIdGetDatum(GetUserId());
	memset(nulls, ' ', sizeof(nulls));
	nqueues = pq_events_run_as(PQ_EVENT_DEFERRED,
							   pq_schema_has_workflows() ? &stmt_insert_batch : &stmt_insert_batch_1_0,
							   v, nulls);
	{
		char	  **queues = palloc(sizeof(char *) * Max(nqueues, 1));

		for (int i = 0; i < nqueues; i++)
			queues[i] = pq_get_text(i, 1);
		for (int i = 0; i < nqueues; i++)
			pq_notify_ready(queues[i]);
	}

	/* one INSERT for the dependency rows */
	if (nedges == 0)
		return;
	edge_child = palloc(sizeof(int64) * nedges);
	edge_parent = palloc(sizeof(int64) * nedges);
	for (int i = 0; i < n; i++)
	{
		PQBatchJob *job = &jobs[i];

		for (int p = 0; p < job->spec->nparents; p++)
		{
			edge_child[e] = ids[i];
			edge_parent[e++] = job->spec->parents[p];
		}
		for (int p = 0; p < job->nbatch_parents; p++)
		{
			if (p > 0 && job->batch_parents[p - 1] == job->batch_parents[p])
				continue;
			edge_child[e] = ids[i];
			edge_parent[e++] = ids[job->batch_parents[p]];
		}
	}
	Assert(e == nedges);
	v[0] = pq_int8_array(edge_child, nedges);
	v[1] = pq_int8_array(edge_parent, nedges);
	pq_exec(&stmt_insert_batch_deps, v, NULL, 0);
}

/*
 * materialize_ids sets up the result of a function returning setof bigint
 * as a tuplestore of one bigint column, and returns it.
 */
static Tuplestorestate *
materialize_ids(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	TupleDesc	desc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("materialize mode required, but it is not allowed in this context")));
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	desc = CreateTemplateTupleDesc(1);
	TupleDescInitEntry(desc, (AttrNumber) 1, "id", INT8OID, -1, 0);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setDesc = desc;
	rsinfo->setResult = tuplestore_begin_heap((rsinfo->allowedModes & SFRM_Materialize_Random) != 0,
											  false, work_mem);
	MemoryContextSwitchTo(old);
	return rsinfo->setResult;
}

/*
 * procq.defer_jobs(task, args jsonb[], queue, priority, scheduled_at,
 *					depends_on, max_attempts, lock, run_after, workflow_id)
 *	 returns setof bigint
 *
 * One job per element of args, all with the same settings and parents (a
 * fan-out in one call), inserted in set-based statements; returns their
 * ids, ascending in the order of args.  All or none.
 */
Datum
procq_defer_jobs(PG_FUNCTION_ARGS)
{
	Tuplestorestate *store;
	TupleDesc	desc;
	PQJobSpec	spec = {0};
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	PQJobSpec  *specs;
	PQBatchJob *jobs;
	int			current;

	store = materialize_ids(fcinfo);
	desc = ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc;

	pq_require_arg(fcinfo, 0, "task");
	pq_require_arg(fcinfo, 1, "args");
	pq_require_arg(fcinfo, 2, "queue");
	pq_require_arg(fcinfo, 3, "priority");
	pq_require_arg(fcinfo, 6, "max_attempts");

	spec.task = PG_GETARG_TEXT_PP(0);
	spec.queue = PG_GETARG_TEXT_PP(2);
	spec.priority = PG_GETARG_INT32(3);
	spec.has_scheduled_at = !PG_ARGISNULL(4);
	spec.scheduled_at = spec.has_scheduled_at ? PG_GETARG_TIMESTAMPTZ(4) : 0;
	spec.max_attempts = PG_GETARG_INT32(6);
	spec.lock = PG_ARGISNULL(7) ? NULL : PG_GETARG_TEXT_PP(7);
	if (!PG_ARGISNULL(5))
		depends_on_arg(PG_GETARG_ARRAYTYPE_P(5), &spec);
	if (PG_NARGS() > 9)
	{
		pq_require_arg(fcinfo, 8, "run_after");
		spec.run_after = pq_check_run_after(PG_GETARG_TEXT_PP(8), "run_after");
		spec.workflow_id = PG_ARGISNULL(9) ? 0 : pq_workflow_arg(PG_GETARG_INT64(9));
	}
	pq_validate_spec(&spec);

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), JSONBOID, -1, false, TYPALIGN_INT,
					  &elems, &elem_nulls, &n);
	for (int i = 0; i < n; i++)
		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("args must not contain NULL"),
					 errdetail("Element %d of args is NULL.", i + 1),
					 errhint("Use '{}' for a job without arguments.")));
	if (n == 0)
		return (Datum) 0;

	specs = palloc(sizeof(PQJobSpec) * n);
	jobs = palloc0(sizeof(PQBatchJob) * n);
	for (int i = 0; i < n; i++)
	{
		specs[i] = spec;
		specs[i].args = DatumGetJsonbP(elems[i]);
		jobs[i].spec = &specs[i];
	}

	pq_connect();
	pq_defer_batch(jobs, n, &current);
	pq_finish();

	for (int i = 0; i < n; i++)
	{
		Datum		values[1] = {Int64GetDatum(jobs[i].id)};
		bool		nulls[1] = {false};

		tuplestore_putvalues(store, desc, values, nulls);
	}
	return (Datum) 0;
}
