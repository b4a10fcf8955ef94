/*-------------------------------------------------------------------------
 *
 * workflows.c
 *	  Workflows as a whole (issue 9): the workflow a new job joins
 *	  (defer.c asks), and procq.cancel_workflow, procq.workflow_dot and
 *	  procq.parents.
 *
 * A workflow is named by the id of its first job (workflow_id = id).  A
 * role may act on a workflow when it may act on that job (authz.c); once
 * the first job is purged, on the earliest job the workflow still has.
 * The view procq.workflows (SQL only) follows the same rule, and lets a
 * role with SELECT on procq.jobs see every workflow.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "args.h"
#include "authz.h"
#include "jobs.h"
#include "locks.h"
#include "procq.h"
#include "shmem.h"
#include "spi_exec.h"
#include "workflows.h"

PG_FUNCTION_INFO_V1(procq_cancel_workflow);
PG_FUNCTION_INFO_V1(procq_workflow_dot);
PG_FUNCTION_INFO_V1(procq_parents);

/*
 * The first job of workflow $1, locked FOR SHARE (as defer locks parents)
 * so that neither a delete nor add_dependencies (which may move a job that
 * is alone in its workflow into another one) changes it before the
 * caller's new job, which names it, commits.
 */
static PQStatement stmt_workflow_head = PQ_STATEMENT(
	"SELECT deferred_by, workflow_id FROM procq.jobs WHERE id = $1 FOR SHARE",
	1, INT8OID);

/*
 * the workflows of the jobs $1 (locked by the caller): the same one?  The
 * count keeps the planner from reading min and max off jobs_workflow_idx
 * (a walk of the whole workflow, filtered by id, per call).
 */
static PQStatement stmt_parents_workflow = PQ_STATEMENT(
	"SELECT min(workflow_id), max(workflow_id), count(*) FROM procq.jobs WHERE id = ANY ($1)",
	1, INT8ARRAYOID);

/*
 * The first job of workflow $1 (id = workflow_id; once that was purged, the
 * earliest remaining job), and whether role $2 may read procq.jobs anyway.
 * The first job decides, not the lowest id: a job with a lower id that got
 * into the workflow somehow (a DBA's update, data of an older build) must
 * not hand the workflow to its own role.  The Append stops at its first
 * row: the primary key's lookup, else one row of jobs_workflow_idx.
 */
static PQStatement stmt_workflow_first = PQ_STATEMENT(
	"SELECT id, deferred_by,"
	" pg_catalog.has_table_privilege($2, 'procq.jobs'::pg_catalog.regclass, 'SELECT')"
	" FROM ((SELECT id, deferred_by FROM procq.jobs WHERE id = $1 AND workflow_id = $1)"
	"  UNION ALL"
	"  (SELECT id, deferred_by FROM procq.jobs WHERE workflow_id = $1 ORDER BY id LIMIT 1)) f"
	" LIMIT 1",
	2, INT8OID, OIDOID);

/* the jobs of workflow $1 that cancel_workflow may change */
static PQStatement stmt_live_jobs = PQ_STATEMENT(
	"SELECT id, status = 'doing', deferred_by, lock FROM procq.jobs"
	" WHERE workflow_id = $1 AND status IN ('todo', 'doing') ORDER BY id",
	1, INT8OID);

/*
 * The todo jobs $1 and the doing jobs $2 (that no background worker runs)
 * end cancelled, in one statement: the status trigger does the
 * bookkeeping of all of them at once.  The descendants it would cancel
 * among them are cancelled already, so it leaves them alone.  An aborted
 * job gets cancel_job's error, which is what its worker's finish_job and
 * heartbeat recognize (pq_refuse_not_running).
 */
static PQStatement stmt_cancel_jobs = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'cancelled', finished_at = clock_timestamp(),"
	" error = CASE WHEN status = 'todo' THEN 'cancelled by procq.cancel_workflow'"
	"  ELSE '" PQ_ABORTED_ERROR "' END,"
	" lock_blocked = false, delayed = false"
	" WHERE (id = ANY ($1) AND status = 'todo') OR (id = ANY ($2) AND status = 'doing')"
	" RETURNING id",
	2, INT8ARRAYOID, INT8ARRAYOID);

static PQStatement stmt_dot_nodes = PQ_STATEMENT(
	"SELECT id, task, status::text FROM procq.jobs WHERE workflow_id = $1 ORDER BY id",
	1, INT8OID);

/* the edges between jobs of workflow $1, with the child's condition */
static PQStatement stmt_dot_edges = PQ_STATEMENT(
	"SELECT d.depends_on, d.job_id, c.run_after"
	" FROM procq.jobs c"
	" JOIN procq.job_dependencies d ON d.job_id = c.id"
	" JOIN procq.jobs p ON p.id = d.depends_on"
	" WHERE c.workflow_id = $1 AND p.workflow_id = $1"
	" ORDER BY d.depends_on, d.job_id",
	1, INT8OID);

static PQStatement stmt_parents = PQ_STATEMENT(
	"SELECT p.id, p.task, p.status, p.result, p.error, p.step_key"
	" FROM procq.job_dependencies d JOIN procq.jobs p ON p.id = d.depends_on"
	" WHERE d.job_id = $1 ORDER BY p.id",
	1, INT8OID);

static void workflow_not_found(int64 workflow_id, const char *detail) pg_attribute_noreturn();

/*
 * workflow_not_found raises P0002 for a workflow that does not exist.
 */
static void
workflow_not_found(int64 workflow_id, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("workflow %lld does not exist", (long long) workflow_id),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("A workflow is named by the id of its first job (procq.jobs.workflow_id).")));
}

/*
 * pq_workflow_arg checks a workflow_id argument before anything is
 * locked: job ids are positive, so no other value names a workflow (and
 * defer.h gives negative values a meaning of its own).
 */
int64
pq_workflow_arg(int64 workflow_id)
{
	if (workflow_id <= 0)
		workflow_not_found(workflow_id, NULL);
	return workflow_id;
}

/*
 * pq_check_workflow raises P0002 unless job workflow_id exists and is the
 * first job of a workflow, and 42501 unless the current user may act on
 * it: putting a job into a workflow is acting on it.  The job stays locked
 * FOR SHARE until the transaction ends.  The caller has connected SPI.
 */
void
pq_check_workflow(int64 workflow_id)
{
	Datum		v[1] = {Int64GetDatum(workflow_id)};
	bool		isnull;
	int64		its_workflow;

	if (pq_exec(&stmt_workflow_head, v, NULL, 1) == 0)
		workflow_not_found(workflow_id, NULL);
	its_workflow = DatumGetInt64(pq_get_attr(0, 2, &isnull));
	if (its_workflow != workflow_id)
		workflow_not_found(workflow_id,
						   psprintf("Job %lld is a job of workflow %lld.",
									(long long) workflow_id, (long long) its_workflow));
	pq_require_job_access(workflow_id, DatumGetObjectId(pq_get_attr(0, 1, &isnull)));
}

/*
 * pq_parents_workflow returns the workflow that all the jobs of
 * parents_array (a non-empty bigint[] Datum of existing jobs, locked by
 * the caller, so that their workflow cannot change) belong to, or 0 when
 * they belong to several.  The caller has connected SPI.
 */
int64
pq_parents_workflow(Datum parents_array)
{
	Datum		v[1] = {parents_array};
	bool		isnull_min;
	bool		isnull_max;
	int64		lo;
	int64		hi;

	pq_exec(&stmt_parents_workflow, v, NULL, 1);
	lo = DatumGetInt64(pq_get_attr(0, 1, &isnull_min));
	hi = DatumGetInt64(pq_get_attr(0, 2, &isnull_max));
	if (isnull_min || isnull_max || lo != hi)
		return 0;
	return lo;
}

/*
 * require_workflow_access raises P0002 when workflow workflow_id has no
 * job, and 42501 unless the current user may act on its first job (see
 * stmt_workflow_first) or may read procq.jobs (what the view procq.workflows shows it).  The
 * caller has connected SPI.
 */
static void
require_workflow_access(int64 workflow_id)
{
	Datum		v[2] = {Int64GetDatum(workflow_id), ObjectIdGetDatum(GetUserId())};
	bool		isnull;

	if (pq_exec(&stmt_workflow_first, v, NULL, 1) == 0)
		workflow_not_found(workflow_id, NULL);
	if (DatumGetBool(pq_get_attr(0, 3, &isnull)))
		return;
	pq_require_job_access(DatumGetInt64(pq_get_attr(0, 1, &isnull)),
						  DatumGetObjectId(pq_get_attr(0, 2, &isnull)));
}

/* A job cancel_workflow may change, as stmt_live_jobs listed it. */
typedef struct LiveJob
{
	int64		id;
	bool		doing;
	Oid			deferred_by;
	char	   *lock;			/* NULL when none */
} LiveJob;

/*
 * cmp_cstring_ptr orders C strings (through pointers) for qsort.
 */
static int
cmp_cstring_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * cmp_int64 orders int64 values for qsort and bsearch.
 */
static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * list_live_jobs reads the todo and doing jobs of the workflow into
 * *jobs, and returns how many.
 */
static int
list_live_jobs(int64 workflow_id, LiveJob **jobs)
{
	Datum		v[1] = {Int64GetDatum(workflow_id)};
	int			n = pq_exec(&stmt_live_jobs, v, NULL, 0);
	LiveJob    *out = palloc(sizeof(LiveJob) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		out[i].id = DatumGetInt64(pq_get_attr(i, 1, &isnull));
		out[i].doing = DatumGetBool(pq_get_attr(i, 2, &isnull));
		out[i].deferred_by = DatumGetObjectId(pq_get_attr(i, 3, &isnull));
		out[i].lock = pq_get_text(i, 4);
	}
	*jobs = out;
	return n;
}

/*
 * lock_queues_of takes the procq locks of the lock queues of the jobs
 * (pq_lock_key: before their rows are changed), each once, in a fixed
 * order.
 */
static void
lock_queues_of(LiveJob *jobs, int n)
{
	char	  **locks = palloc(sizeof(char *) * Max(n, 1));
	int			nlocks = 0;

	for (int i = 0; i < n; i++)
		if (jobs[i].lock != NULL)
			locks[nlocks++] = jobs[i].lock;
	qsort(locks, nlocks, sizeof(char *), cmp_cstring_ptr);
	for (int i = 0; i < nlocks; i++)
		if (i == 0 || strcmp(locks[i - 1], locks[i]) != 0)
			pq_lock_key(locks[i]);
}

/*
 * procq.cancel_workflow(workflow_id, abort) returns integer
 *
 * Cancels every todo job of the workflow, clean-up and alert steps
 * included (nothing of it runs any more); with abort, also stops its
 * running jobs the way cancel_job(abort => true) does.  Returns how many
 * jobs end cancelled.  P0002 when the workflow has no job; 42501, and
 * nothing changes, when the caller may not act on one of the jobs it
 * would cancel.  Without abort a job that a background worker is fetching
 * at this moment counts as running (cancel_job does the same).  Jobs
 * deferred into the workflow while it runs may escape it.
 */
Datum
procq_cancel_workflow(PG_FUNCTION_ARGS)
{
	int64		workflow_id;
	bool		abort;
	int			cancelled = 0;
	PQIdList	handled = {0};

	pq_require_arg(fcinfo, 0, "workflow_id");
	pq_require_arg(fcinfo, 1, "abort");
	workflow_id = PG_GETARG_INT64(0);
	abort = PG_GETARG_BOOL(1);

	pq_connect();
	{
		Datum		v[2] = {Int64GetDatum(workflow_id), ObjectIdGetDatum(GetUserId())};

		if (pq_exec(&stmt_workflow_first, v, NULL, 1) == 0)
			workflow_not_found(workflow_id, NULL);
	}

	/*
	 * Once without abort.  With abort, again while jobs that were todo
	 * when listed started meanwhile (a fetch committed before our UPDATE
	 * got to them): they are running now and are stopped in the next round.
	 */
	for (;;)
	{
		LiveJob    *jobs;
		int			n = list_live_jobs(workflow_id, &jobs);
		PQIdList	todo = {0};
		PQIdList	doing = {0};
		int			planned;
		int			nsorted;
		Datum		v[2];

		/*
		 * the running jobs dealt with in earlier rounds, sorted for bsearch
		 * (a round lists each job once)
		 */
		if (handled.n > 1)
			qsort(handled.ids, handled.n, sizeof(int64), cmp_int64);
		nsorted = handled.n;

		/* every job it would cancel, before anything changes */
		for (int i = 0; i < n; i++)
			if (abort || !jobs[i].doing)
				pq_require_job_access(jobs[i].id, jobs[i].deferred_by);

		for (int i = 0; i < n; i++)
		{
			if (nsorted > 0 &&
				bsearch(&jobs[i].id, handled.ids, nsorted, sizeof(int64), cmp_int64) != NULL)
				continue;

			/*
			 * A background worker runs it or is fetching it (it names the
			 * job in its slot before its fetch commits): with abort, it is
			 * asked to end the job cancelled; without, the job counts as
			 * running, and its row stays locked until the worker's batch
			 * commits: do not wait for that.
			 */
			if (pq_worker_runs_job(jobs[i].id))
			{
				if (!abort)
					continue;
				switch (pq_abort_running_job(jobs[i].id))
				{
					case PQ_ABORT_REQUESTED:
						cancelled++;
						pq_idlist_add(&handled, jobs[i].id);
						continue;
					case PQ_ABORT_TOO_LATE:
						pq_idlist_add(&handled, jobs[i].id);
						continue;
					case PQ_ABORT_NOT_RUNNING:
						break;
				}
			}
			if (!jobs[i].doing)
				pq_idlist_add(&todo, jobs[i].id);
			else if (abort)
			{
				pq_idlist_add(&doing, jobs[i].id);
				pq_idlist_add(&handled, jobs[i].id);
			}
		}
		planned = todo.n + doing.n;
		if (planned == 0)
			break;

		lock_queues_of(jobs, n);
		v[0] = pq_int8_array(todo.ids, todo.n);
		v[1] = pq_int8_array(doing.ids, doing.n);
		n = pq_exec(&stmt_cancel_jobs, v, NULL, 0);
		cancelled += n;
		if (!abort || n == planned)
			break;
	}
	pq_finish();

	PG_RETURN_INT32(cancelled);
}

/*
 * dot_string appends s to buf as the inside of a DOT double-quoted
 * string: quotes and backslashes escaped, line breaks as \n.
 */
static void
dot_string(StringInfo buf, const char *s)
{
	for (; *s; s++)
	{
		if (*s == '"' || *s == '\\')
			appendStringInfoChar(buf, '\\');
		if (*s == '\n')
			appendStringInfoString(buf, "\\n");
		else if (*s != '\r')
			appendStringInfoChar(buf, *s);
	}
}

/*
 * status_colour is the fill colour of a job's node by its status.
 */
static const char *
status_colour(const char *status)
{
	if (strcmp(status, "todo") == 0)
		return "white";
	if (strcmp(status, "doing") == 0)
		return "lightskyblue";
	if (strcmp(status, "succeeded") == 0)
		return "palegreen";
	if (strcmp(status, "failed") == 0)
		return "salmon";
	return "lightgrey";
}

/*
 * procq.workflow_dot(workflow_id) returns text
 *
 * The workflow as a Graphviz digraph: a node "id: task" per job, filled by
 * its status, an edge parent -> child per dependency between jobs of the
 * workflow; an edge into a child that runs after its parents' 'completion'
 * or a 'failure' among them is dashed and labelled so.  Nodes and edges in
 * id order, so that the same workflow gives the same text.  Access as for
 * the view procq.workflows.
 */
Datum
procq_workflow_dot(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	int64		workflow_id;
	StringInfoData buf;
	Datum		v[1];
	int			n;
	text	   *result;

	pq_require_arg(fcinfo, 0, "workflow_id");
	workflow_id = PG_GETARG_INT64(0);

	pq_connect();
	require_workflow_access(workflow_id);

	initStringInfo(&buf);
	appendStringInfo(&buf, "digraph \"workflow %lld\" {\n", (long long) workflow_id);
	appendStringInfoString(&buf, "  node [shape=box, style=\"rounded,filled\"];\n");
	v[0] = Int64GetDatum(workflow_id);
	n = pq_exec(&stmt_dot_nodes, v, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(pq_get_attr(i, 1, &isnull));

		appendStringInfo(&buf, "  %lld [label=\"%lld: ", (long long) id, (long long) id);
		dot_string(&buf, pq_get_text(i, 2));
		appendStringInfo(&buf, "\", fillcolor=%s];\n", status_colour(pq_get_text(i, 3)));
	}
	n = pq_exec(&stmt_dot_edges, v, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *run_after = pq_get_text(i, 3);

		appendStringInfo(&buf, "  %lld -> %lld",
						 (long long) DatumGetInt64(pq_get_attr(i, 1, &isnull)),
						 (long long) DatumGetInt64(pq_get_attr(i, 2, &isnull)));
		if (strcmp(run_after, "success") != 0)
		{
			appendStringInfoString(&buf, " [label=\"");
			dot_string(&buf, run_after);
			appendStringInfoString(&buf, "\", style=dashed]");
		}
		appendStringInfoString(&buf, ";\n");
	}
	appendStringInfoString(&buf, "}\n");

	result = (text *) MemoryContextAlloc(caller, VARHDRSZ + buf.len);
	SET_VARSIZE(result, VARHDRSZ + buf.len);
	memcpy(VARDATA(result), buf.data, buf.len);
	pq_finish();

	PG_RETURN_TEXT_P(result);
}

/*
 * procq.parents(job_id) returns table (job_id, task, status, result,
 * error, step_key)
 *
 * What the job's parents did, in id order, so that a clean-up or alert
 * step can act on it.  Access as parent_results: the job and every parent.
 */
Datum
procq_parents(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		job_id;
	Datum		v[1];
	int			n;

	pq_require_arg(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	InitMaterializedSRF(fcinfo, 0);

	pq_connect();
	pq_require_job_access_by_id(job_id);
	pq_require_parents_access(job_id);
	v[0] = Int64GetDatum(job_id);
	n = pq_exec(&stmt_parents, v, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		Datum		values[6];
		bool		nulls[6];

		for (int c = 0; c < 6; c++)
			values[c] = pq_get_attr(i, c + 1, &nulls[c]);
		/* the tuplestore copies the values out of SPI's memory */
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pq_finish();

	return (Datum) 0;
}
