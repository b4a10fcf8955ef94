/*-------------------------------------------------------------------------
 *
 * dependencies.c
 *	  procq.add_dependencies: new parents for a job that has not started,
 *	  so that a running job can defer more work and make a join wait for
 *	  it (issue 9, fan-out decided at run time).
 *
 * Unlike defer, whose child is new and so can neither have children nor
 * close a cycle, add_dependencies links existing jobs: it must keep the
 * graph acyclic (there is no CHECK depends_on < job_id any more), judge
 * the new edges by the parents' state as defer does, and do so against a
 * concurrent fetch of the child and a concurrent finish of a parent.
 *
 * Locks, in this order (see procq_add_dependencies for why each):
 *	- the dependency graph's procq lock (pq_lock_dependency_graph): calls
 *	  of add_dependencies run one at a time, so the cycle check of each
 *	  sees the committed edges of the others;
 *	- the procq lock of the child's lock queue, if it has a lock value (a
 *	  child cancelled here moves its lock queue along);
 *	- the child's row FOR UPDATE;
 *	- the new parents' rows FOR SHARE, in id order;
 *	- those of them that may join the child's workflow FOR UPDATE, in id
 *	  order (stmt_lock_joiners: waits for a defer into their workflow).
 *	  Upgrading a shared lock can deadlock with a transaction that holds
 *	  one of them FOR SHARE (a defer naming it) and waits for a row we
 *	  hold (the child, or another parent): PostgreSQL aborts one with
 *	  40P01, nothing is left half done, the caller retries.
 *
 * The cost of the first: calls of add_dependencies in one database run one
 * at a time (each holds the lock until it commits), whatever jobs they
 * name; defer, fetch, finish and the rest never take it and never wait for
 * it.  A call that also waits for row locks (a parent being finished)
 * makes the other calls wait that long too.
 *
 * The child is locked before its new parents, so a concurrent release of
 * the children of one of the child's existing parents, which locks that
 * parent's children in id order, can deadlock with us when one of those
 * children is also a new parent with a lower id than the child (it locked
 * that one and waits for the child; we hold the child and wait for it).
 * PostgreSQL detects it and aborts one of the two with 40P01, which the
 * caller retries; nothing is left half done.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"

#include "args.h"
#include "authz.h"
#include "defer.h"
#include "dependencies.h"
#include "jobs.h"
#include "locks.h"
#include "procq.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_add_dependencies);

/*
 * The most parents one call may add: each costs a row lock, a dependency
 * row and memory for the call's arrays (the same bound as defer's).
 */
#define PQ_MAX_NEW_PARENTS 1000000

static PQStatement stmt_lock_child = PQ_STATEMENT(
	"SELECT status::text, workflow_id FROM procq.jobs WHERE id = $1 FOR UPDATE",
	1, INT8OID);

static PQStatement stmt_existing_parents = PQ_STATEMENT(
	"SELECT depends_on FROM procq.job_dependencies"
	" WHERE job_id = $1 AND depends_on = ANY($2)",
	2, INT8OID, INT8ARRAYOID);

/* one level of the walk down from the child, by job_dependencies_depends_on_idx */
static PQStatement stmt_children_of = PQ_STATEMENT(
	"SELECT depends_on, job_id FROM procq.job_dependencies"
	" WHERE depends_on = ANY($1) ORDER BY depends_on, job_id",
	1, INT8ARRAYOID);

static PQStatement stmt_insert_edges = PQ_STATEMENT(
	"INSERT INTO procq.job_dependencies (job_id, depends_on)"
	" SELECT $1, p FROM unnest($2::bigint[]) AS p",
	2, INT8OID, INT8ARRAYOID);



/*
 * Parents that are alone in a workflow of their own join the child's
 * workflow $2, if they are newer than its first job (id > $2): the first
 * job of a workflow stays its lowest id, and a workflow's access (which
 * its first job's role decides, procq.workflows, workflow_dot,
 * cancel_workflow) never moves to the role of an older job that joins it.
 * An older lone parent keeps its own workflow.
 *
 * Two statements, so that the second sees what the first waited for:
 * stmt_lock_joiners locks the candidates FOR UPDATE, in id order (they
 * are held FOR SHARE by us already, pq_judge_new_parents); a concurrent
 * defer(workflow_id => P) holds P FOR SHARE until it commits, so this
 * waits for it.  stmt_join_workflow then runs with a snapshot of its own,
 * taken after the wait, and sees the job that defer put into P's workflow:
 * P is not alone any more and stays.  A defer that comes later waits for
 * our lock and then finds P in another workflow (P0002).
 */
static PQStatement stmt_lock_joiners = PQ_STATEMENT(
	"SELECT id FROM procq.jobs"
	" WHERE id = ANY($1) AND workflow_id = id AND id > $2"
	" ORDER BY id FOR UPDATE",
	2, INT8ARRAYOID, INT8OID);

static PQStatement stmt_join_workflow = PQ_STATEMENT(
	"UPDATE procq.jobs p SET workflow_id = $2"
	" WHERE p.id = ANY($1) AND p.workflow_id = p.id AND p.id > $2"
	" AND NOT EXISTS (SELECT 1 FROM procq.jobs o"
	"  WHERE o.workflow_id = p.id AND o.id <> p.id)",
	2, INT8ARRAYOID, INT8OID);

/* A job reached by the cycle check, and the job it was reached from. */
typedef struct Reached
{
	int64		id;				/* hash key */
	int64		via;
} Reached;

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
 * depends_on_ids reads the depends_on argument: sorted, without
 * duplicates; a NULL element is an error (22004), as in defer.
 */
static int64 *
depends_on_ids(ArrayType *arr, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	int64	   *ids;

	deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &elems, &nulls, &nelems);
	if (nelems > PQ_MAX_NEW_PARENTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a call may add at most %d parents", PQ_MAX_NEW_PARENTS),
				 errdetail("depends_on has %d elements.", nelems)));
	ids = palloc(sizeof(int64) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("depends_on must not contain NULL"),
					 errdetail("Element %d of depends_on is NULL.", i + 1)));
		ids[i] = DatumGetInt64(elems[i]);
	}
	*n = nelems;
	pq_sort_unique_ids(ids, n);
	return ids;
}

/*
 * not_todo refuses new parents for a job that is not todo (it was fetched,
 * or has ended): a job that started cannot wait for anything any more.
 */
static void
not_todo(int64 job_id, const char *status)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("job %lld is %s, not todo: it cannot get new parents",
					(long long) job_id, status),
			 errdetail("Only a job that has not been fetched yet can be made to wait for more jobs."),
			 errhint("Defer a new job that depends on the jobs instead.")));
}

/*
 * cycle_error reports that job child cannot depend on job parent: path is
 * the cycle, as "job C -> job P -> ... -> job C", each job depending on
 * the next.
 */
static void
cycle_error(int64 child, int64 parent, const char *path)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("job %lld cannot depend on job %lld: that would close the cycle %s",
					(long long) child, (long long) parent, path),
			 errdetail(child == parent
					   ? "A job cannot depend on itself."
					   : "Each job of the cycle depends on the next: none of them could ever run."),
			 errhint("Dependencies must form a directed acyclic graph.")));
}

/*
 * skip_existing removes from ids (sorted) the parents the child already
 * has: they are not added again, and count 0.  The child is locked and the
 * dependency graph's lock is held, so these rows stay as they are.
 */
static void
skip_existing(int64 child, int64 *ids, int *n)
{
	Datum		v[2] = {Int64GetDatum(child), pq_int8_array(ids, *n)};
	int			nrows = pq_exec(&stmt_existing_parents, v, NULL, 0);
	int64	   *existing = palloc(sizeof(int64) * Max(nrows, 1));
	int			out = 0;
	bool		isnull;

	for (int r = 0; r < nrows; r++)
		existing[r] = DatumGetInt64(pq_get_attr(r, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	qsort(existing, nrows, sizeof(int64), cmp_int64);
	for (int i = 0; i < *n; i++)
		if (bsearch(&ids[i], existing, nrows, sizeof(int64), cmp_int64) == NULL)
			ids[out++] = ids[i];
	*n = out;
	pfree(existing);
}

/*
 * check_no_cycle refuses (22023) new parents ids (sorted, the child not
 * among them) of which one is a descendant of the child: the new edge would close a
 * cycle.  It walks down from the child, one level per statement, each with
 * a fresh snapshot (pq_exec): with the dependency graph's lock held, that
 * sees every edge that any other add_dependencies committed, and defer
 * adds no edge below an existing job.  The walk is breadth first, so the
 * cycle reported is a shortest one, through the lowest such parent.
 */
static void
check_no_cycle(int64 child, int64 *ids, int n)
{
	HASHCTL		ctl;
	HTAB	   *reached;
	PQIdList	frontier = {0};
	Reached    *entry;
	bool		found;

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(Reached);
	ctl.hcxt = CurrentMemoryContext;
	reached = hash_create("procq descendants", 64, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	entry = hash_search(reached, &child, HASH_ENTER, &found);
	entry->via = 0;
	pq_idlist_add(&frontier, child);

	while (frontier.n > 0)
	{
		PQIdList	next = {0};
		Datum		v[1] = {pq_int8_array(frontier.ids, frontier.n)};
		int			nrows = pq_exec(&stmt_children_of, v, NULL, 0);
		int64		closing = 0;

		for (int r = 0; r < nrows; r++)
		{
			bool		isnull;
			int64		parent = DatumGetInt64(pq_get_attr(r, 1, &isnull));
			int64		kid = DatumGetInt64(pq_get_attr(r, 2, &isnull));

			entry = hash_search(reached, &kid, HASH_ENTER, &found);
			if (found)
				continue;
			entry->via = parent;
			pq_idlist_add(&next, kid);
			if (bsearch(&kid, ids, n, sizeof(int64), cmp_int64) != NULL &&
				(closing == 0 || kid < closing))
				closing = kid;
		}
		SPI_freetuptable(SPI_tuptable);
		pfree(DatumGetPointer(v[0]));

		if (closing != 0)
		{
			/* child -> closing -> (up the walk) -> child */
			StringInfoData path;
			int64		at = closing;

			initStringInfo(&path);
			appendStringInfo(&path, "job %lld", (long long) child);
			while (at != child)
			{
				appendStringInfo(&path, " -> job %lld", (long long) at);
				entry = hash_search(reached, &at, HASH_FIND, &found);
				Assert(found);
				at = entry->via;
			}
			appendStringInfo(&path, " -> job %lld", (long long) child);
			cycle_error(child, closing, path.data);
		}
		if (frontier.ids)
			pfree(frontier.ids);
		frontier = next;
	}
	hash_destroy(reached);
}

/*
 * procq.add_dependencies(job_id bigint, depends_on bigint[]) returns integer
 *
 * Makes job job_id, which must be todo, depend on the jobs of depends_on
 * too, and returns how many dependency rows were added (parents it
 * already has count 0).  Errors, and nothing changes: 22004 for a NULL
 * argument or element, P0002 for a child that does not exist, 42501
 * without access to the child or a parent, 55000 for a child that is not
 * todo, 23503 for a parent that does not exist, 22023 for a parent that
 * would close a cycle (the message names it).
 *
 * The child is locked FOR UPDATE before its status is judged: a fetch in
 * progress is waited for, and then the child is doing (55000); a fetch
 * that comes later finds the row locked and skips it (fetch uses SKIP
 * LOCKED), and once we commit the child waits for its new parents.  The
 * parents are locked FOR SHARE after it (pq_judge_new_parents), and parents
 * that are alone in a workflow of their own and newer than the child's
 * workflow's first job join the child's workflow (stmt_join_workflow).
 */
Datum
procq_add_dependencies(PG_FUNCTION_ARGS)
{
	int64		child;
	int64	   *ids;
	int			n;
	PQJobInfo	info;
	Datum		v[2];
	bool		isnull;
	char	   *status;
	int64		workflow_id;

	pq_require_arg(fcinfo, 0, "job_id");
	pq_require_arg(fcinfo, 1, "depends_on");
	child = PG_GETARG_INT64(0);
	ids = depends_on_ids(PG_GETARG_ARRAYTYPE_P(1), &n);

	pq_connect();
	if (!pq_schema_has_workflows())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("procq.add_dependencies needs version 1.1 of extension procq"),
				 errhint("Run ALTER EXTENSION procq UPDATE.")));

	/* the child: looked up first, so that nobody locks a job not theirs */
	if (!pq_job_lookup(child, &info))
		pq_job_not_found(child);
	pq_require_job_access(child, info.deferred_by);
	if (strcmp(info.status, "todo") != 0)
		not_todo(child, info.status);

	/* procq's locks before any row lock (see the file header) */
	pq_lock_dependency_graph();
	if (info.lock != NULL)
		pq_lock_key(info.lock);

	v[0] = Int64GetDatum(child);
	if (pq_exec(&stmt_lock_child, v, NULL, 0) == 0)
		pq_job_not_found(child);
	status = pq_get_text(0, 1);
	if (strcmp(status, "todo") != 0)
		not_todo(child, status);
	workflow_id = DatumGetInt64(pq_get_attr(0, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);

	if (n > 0)
		skip_existing(child, ids, &n);
	if (n == 0)
	{
		pq_finish();
		PG_RETURN_INT32(0);
	}

	/* a dependency on itself needs no walk */
	if (bsearch(&child, ids, n, sizeof(int64), cmp_int64) != NULL)
		cycle_error(child, child, psprintf("job %lld -> job %lld",
										   (long long) child, (long long) child));
	check_no_cycle(child, ids, n);

	/*
	 * The new parents are locked FOR SHARE in id order and judged as defer
	 * judges a new job's (src/defer.c): a parent finishing right now is
	 * waited for and then seen final; one finishing after us waits until
	 * our dependency rows are committed and then finds them.  A missing
	 * parent is 23503 (before the INSERT's foreign key could say it less
	 * clearly), one the caller may not act on 42501.  A 'success' child with
	 * a failed or cancelled parent is cancelled, and the status trigger
	 * cancels its descendants.
	 */
	if (!pq_judge_new_parents(child, ids, n))
		elog(ERROR, "procq: job %lld stopped being todo while locked", (long long) child);

	v[0] = Int64GetDatum(child);
	v[1] = pq_int8_array(ids, n);
	(void) pq_exec(&stmt_insert_edges, v, NULL, 0);

	v[0] = pq_int8_array(ids, n);
	v[1] = Int64GetDatum(workflow_id);
	if (pq_exec(&stmt_lock_joiners, v, NULL, 0) > 0)
		(void) pq_exec(&stmt_join_workflow, v, NULL, 0);

	pq_finish();
	PG_RETURN_INT32(n);
}
