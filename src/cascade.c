/*-------------------------------------------------------------------------
 *
 * cascade.c
 *	  Graph walks: releasing the children of a job that succeeded,
 *	  cancelling the descendants of one that ended without success, and
 *	  requeueing those descendants when it is retried.
 *
 * Invariant kept here (see the PREAMBLE of issue 9 and README
 * "Semantics"): pending_parents is, for a job with run_after 'success', the
 * number of its parents that have not succeeded, and for 'completion' and
 * 'failure' the number that are not final; failed_parents is the number
 * that ended without success.  Both are kept for every job, whatever its
 * status.  A succeeded parent releases its children (and a todo 'failure'
 * child whose parents all succeeded is cancelled); a parent that fails for
 * good, is cancelled or is deleted before it succeeded cancels its todo
 * 'success' children, counts itself in the others, and the walk goes on
 * from the jobs it cancelled.  On procq 1.0's table (no run_after, no
 * failed_parents) every job is a 'success' job and only pending_parents
 * is kept.
 *
 * The walks go one level per statement, iteratively: a chain of any length
 * takes no stack, and each level's statement runs with a fresh snapshot,
 * so it sees children whose defer committed while we waited for a row lock
 * on their parent.  They look up children first and then change them by
 * primary key (id = ANY(...)): that plan stays right even before the table
 * has statistics, where a join could choose a full scan per graph level.
 * The children of a set of jobs are read by a direct scan of the index
 * job_dependencies_depends_on_idx (children_scan), which needs no planning:
 * every job's end looks for children, and most have none.  Generic plans
 * are no alternative: one made while the table was small scans it whole,
 * and keeps doing so when it has grown.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "executor/tuptable.h"
#include "nodes/value.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "args.h"
#include "cascade.h"
#include "jobs.h"
#include "locks.h"
#include "notify.h"
#include "procq.h"
#include "spi_exec.h"

static PQStatement stmt_lock_children = PQ_STATEMENT(
	"SELECT id FROM procq.jobs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
	1, INT8ARRAYOID);

/*
 * The same for one child: parameters that are not arrays get a generic
 * plan after a few calls, so a chain or a fan-in is not planned per job.
 * Up to PQ_FEW_CHILDREN children are locked and released one by one with
 * these: a statement with an array parameter is planned for each call,
 * which costs more than a few lookups by primary key (a fan-in with a
 * clean-up step has two children per parent, the join and the clean-up).
 */
#define PQ_FEW_CHILDREN 4

static PQStatement stmt_lock_child = PQ_STATEMENT(
	"SELECT id FROM procq.jobs WHERE id = $1 FOR NO KEY UPDATE",
	1, INT8OID);

/*
 * A todo 'failure' job whose parents are all final and all succeeded: it
 * can never run, and is cancelled (PQ_ALL_SUCCEEDED_ERROR).
 */
#define PQ_NOT_NEEDED_COND \
	"status = 'todo' AND run_after = 'failure' AND pending_parents = 0" \
	" AND failed_parents = 0"

/*
 * The release of children: RETURNING queue, ready, not needed, id.  On
 * procq 1.0's table every job is a 'success' job: never "not needed".
 */
#define RELEASE_RETURNING(not_needed) \
	" RETURNING queue, " PQ_READY_COND " AND NOT (" not_needed "), " \
	not_needed ", id"

static PQStatement stmt_release_child = PQ_STATEMENT(
	"UPDATE procq.jobs SET pending_parents = pending_parents - $2"
	" WHERE id = $1" RELEASE_RETURNING(PQ_NOT_NEEDED_COND),
	2, INT8OID, INT4OID);
static PQStatement stmt_release_child_1_0 = PQ_STATEMENT(
	"UPDATE procq.jobs SET pending_parents = pending_parents - $2"
	" WHERE id = $1" RELEASE_RETURNING("false"),
	2, INT8OID, INT4OID);

/* $1: distinct children, locked, each with $2 parents that just succeeded */
static PQStatement stmt_release_children = PQ_STATEMENT(
	"UPDATE procq.jobs SET pending_parents = pending_parents - $2"
	" WHERE id = ANY($1)" RELEASE_RETURNING(PQ_NOT_NEEDED_COND),
	2, INT8ARRAYOID, INT4OID);
static PQStatement stmt_release_children_1_0 = PQ_STATEMENT(
	"UPDATE procq.jobs SET pending_parents = pending_parents - $2"
	" WHERE id = ANY($1)" RELEASE_RETURNING("false"),
	2, INT8ARRAYOID, INT4OID);

static PQStatement stmt_cancel_not_needed = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'cancelled',"
	" finished_at = clock_timestamp(), cancelled_by = NULL, error = $2,"
	" lock_blocked = false, delayed = false"
	" WHERE id = ANY($1) AND " PQ_NOT_NEEDED_COND
	" RETURNING id",
	2, INT8ARRAYOID, TEXTOID);

/*
 * The todo children (c.child, with the parent c.parent they are blamed on)
 * that a parent's end without success cancels: 'success' ones only since
 * procq 1.1.
 */
#define CANCEL_CHILDREN(cond) \
	"UPDATE procq.jobs j SET status = 'cancelled'," \
	" finished_at = clock_timestamp(), cancelled_by = c.parent," \
	" error = 'parent job ' || c.parent || ' ' || $3," \
	" lock_blocked = false, delayed = false" \
	" FROM unnest($1::bigint[], $2::bigint[]) AS c(child, parent)" \
	" WHERE j.id = ANY($1) AND j.id = c.child AND j.status = 'todo'" cond \
	" RETURNING j.id"

static PQStatement stmt_cancel_children = PQ_STATEMENT(
	CANCEL_CHILDREN(" AND j.run_after = 'success'"),
	3, INT8ARRAYOID, INT8ARRAYOID, TEXTOID);
static PQStatement stmt_cancel_children_1_0 = PQ_STATEMENT(
	CANCEL_CHILDREN(""),
	3, INT8ARRAYOID, INT8ARRAYOID, TEXTOID);

/*
 * The children in $1 (one element per dependency row: a child with two
 * parents among those counted appears twice) count $2 = +1 more, or -1
 * less, parents that ended without success: failed_parents goes up, and
 * for 'completion' and 'failure' children pending_parents goes down (the
 * parent is final now), or the other way round.  Returns the queues of
 * children that became ready.
 */
static PQStatement stmt_count_ended = PQ_STATEMENT(
	"UPDATE procq.jobs j SET failed_parents = j.failed_parents + $2 * c.n,"
	" pending_parents = j.pending_parents"
	"  - CASE WHEN j.run_after = 'success' THEN 0 ELSE $2 * c.n END"
	" FROM (SELECT u.child, count(*)::int4 AS n FROM unnest($1::bigint[])"
	"  AS u(child) GROUP BY u.child) c"
	" WHERE j.id = ANY($1) AND j.id = c.child"
	" RETURNING j.queue, $2 > 0 AND j.run_after <> 'success' AND "
	"  j.status = 'todo' AND j.pending_parents = 0 AND NOT j.lock_blocked"
	"  AND NOT j.delayed",
	2, INT8ARRAYOID, INT4OID);

static PQStatement stmt_lock_parents_of = PQ_STATEMENT(
	"SELECT p.id FROM procq.jobs p WHERE p.id = ANY (ARRAY("
	" SELECT d.depends_on FROM procq.job_dependencies d"
	" WHERE d.job_id = ANY($1))) ORDER BY p.id FOR SHARE",
	1, INT8ARRAYOID);

/* in id order: of two sharing a queueing_lock, the first may come back */
static PQStatement stmt_revive_candidates = PQ_STATEMENT(
	"SELECT s.id, s.blame,"
	" (SELECT p.status::text FROM procq.jobs p WHERE p.id = s.blame),"
	" s.queueing_lock"
	" FROM (SELECT j.id, j.queueing_lock,"
	"  (SELECT d.depends_on FROM procq.job_dependencies d"
	"   WHERE d.job_id = j.id AND (SELECT p.status FROM procq.jobs p"
	"    WHERE p.id = d.depends_on) IN ('failed', 'cancelled')"
	"   ORDER BY d.depends_on LIMIT 1) AS blame"
	"  FROM procq.jobs j"
	"  JOIN unnest($1::bigint[], $2::bigint[]) AS c(child, parent)"
	"   ON j.id = c.child"
	"  WHERE j.id = ANY($1) AND j.status = 'cancelled'"
	"  AND j.cancelled_by = c.parent) s"
	" ORDER BY s.id",
	2, INT8ARRAYOID, INT8ARRAYOID);

static PQStatement stmt_queueing_holders = PQ_STATEMENT(
	"SELECT queueing_lock, id FROM procq.jobs"
	" WHERE queueing_lock = ANY ($1) AND status = 'todo'",
	1, TEXTARRAYOID);

/* children that stay cancelled because another job holds their queueing_lock */
static PQStatement stmt_keep_cancelled = PQ_STATEMENT(
	"UPDATE procq.jobs j SET error = format('not requeued with parent job %s:"
	" job %s already waits with queueing_lock \"%s\"',"
	"  j.cancelled_by, c.holder, j.queueing_lock)"
	" FROM unnest($1::bigint[], $2::bigint[]) AS c(id, holder)"
	" WHERE j.id = ANY($1) AND j.id = c.id",
	2, INT8ARRAYOID, INT8ARRAYOID);

static PQStatement stmt_revive = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'todo', finished_at = NULL,"
	" cancelled_by = NULL, error = NULL,"
	" delayed = scheduled_at IS NOT NULL"
	"  AND scheduled_at > statement_timestamp(),"
	" lock_blocked = lock IS NOT NULL"
	" WHERE id = ANY($1) AND status = 'cancelled'"
	" RETURNING id, queue, lock, " PQ_READY_COND,
	1, INT8ARRAYOID);

static PQStatement stmt_reblame = PQ_STATEMENT(
	"UPDATE procq.jobs j SET cancelled_by = c.parent,"
	" error = 'parent job ' || c.parent || ' ' || c.how"
	" FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS c(id, parent, how)"
	" WHERE j.id = ANY($1) AND j.id = c.id",
	3, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID);

/* A dependency row: a child and one of its parents. */
typedef struct DepPair
{
	int64		child;
	int64		parent;
} DepPair;

/*
 * cmp_dep_pairs orders DepPairs by child, then parent.
 */
static int
cmp_dep_pairs(const void *a, const void *b)
{
	const DepPair *x = (const DepPair *) a;
	const DepPair *y = (const DepPair *) b;

	if (x->child != y->child)
		return x->child < y->child ? -1 : 1;
	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	return 0;
}

/*
 * cmp_int64 orders int64s.
 */
static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * children_scan finds the dependency rows whose parent is in parents, as
 * of a snapshot taken now (like pq_exec's statements), by a scan of the
 * index job_dependencies_depends_on_idx per parent; with stop_at_first,
 * only whether each parent has one.  Returns the rows as DepPairs, sorted
 * by child and parent, and their number in *n.
 */
static DepPair *
children_scan(PQIdList *parents, bool stop_at_first, int *n)
{
	Oid			nsp = get_namespace_oid("procq", false);
	Oid			relid = get_relname_relid("job_dependencies", nsp);
	Oid			indexid = get_relname_relid("job_dependencies_depends_on_idx", nsp);
	Relation	rel;
	Relation	index;
	Snapshot	snapshot;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ScanKeyData key;
	AttrNumber	child_att;
	AttrNumber	parent_att;
	DepPair    *pairs;
	int			cap = 16;

	if (!OidIsValid(relid) || !OidIsValid(indexid))
		elog(ERROR, "procq: index job_dependencies_depends_on_idx does not exist");

	rel = table_open(relid, AccessShareLock);
	index = index_open(indexid, AccessShareLock);
	child_att = SPI_fnumber(RelationGetDescr(rel), "job_id");
	parent_att = SPI_fnumber(RelationGetDescr(rel), "depends_on");
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(rel, NULL);
	pairs = palloc(sizeof(DepPair) * cap);
	*n = 0;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(0));
	scan = index_beginscan(rel, index, snapshot, 1, 0);
	for (int i = 0; i < parents->n; i++)
	{
		key.sk_argument = Int64GetDatum(parents->ids[i]);
		index_rescan(scan, &key, 1, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			bool		isnull;

			if (*n == cap)
			{
				cap *= 2;
				pairs = repalloc(pairs, sizeof(DepPair) * cap);
			}
			pairs[*n].child = DatumGetInt64(slot_getattr(slot, child_att, &isnull));
			pairs[*n].parent = DatumGetInt64(slot_getattr(slot, parent_att, &isnull));
			(*n)++;
			if (stop_at_first)
				break;
		}
	}
	index_endscan(scan);

	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(index, AccessShareLock);
	table_close(rel, AccessShareLock);

	qsort(pairs, *n, sizeof(DepPair), cmp_dep_pairs);
	return pairs;
}

/*
 * children_of finds the dependency rows whose parent is in parents, and
 * returns the children and their parent as two parallel bigint[] Datums
 * ordered by child (a child with two parents among them appears twice).
 * Returns false when there are none.
 */
static bool
children_of(PQIdList *parents, Datum *children, Datum *their_parents)
{
	int			n;
	DepPair    *pairs = children_scan(parents, false, &n);
	int64	   *kids;
	int64	   *ps;

	if (n == 0)
	{
		pfree(pairs);
		return false;
	}
	kids = palloc(sizeof(int64) * n);
	ps = palloc(sizeof(int64) * n);
	for (int i = 0; i < n; i++)
	{
		kids[i] = pairs[i].child;
		ps[i] = pairs[i].parent;
	}
	*children = pq_int8_array(kids, n);
	*their_parents = pq_int8_array(ps, n);
	pfree(kids);
	pfree(ps);
	pfree(pairs);
	return true;
}

/*
 * release_children_by decrements pending_parents of the children in kids
 * (distinct, locked) by n, notifies the queues of children that became
 * ready, and adds to *not_needed the todo 'failure' children whose parents
 * now all succeeded.
 */
static void
release_children_by(PQIdList *kids, int32 n, PQIdList *not_needed)
{
	List	   *queues = NIL;
	bool		v11 = pq_schema_has_workflows();
	bool		one_by_one = kids->n <= PQ_FEW_CHILDREN;
	int			nstmts = one_by_one ? kids->n : 1;

	for (int k = 0; k < nstmts; k++)
	{
		Datum		r[2];
		int			nrows;
		PQStatement *stmt;

		r[0] = one_by_one ? Int64GetDatum(kids->ids[k])
			: pq_int8_array(kids->ids, kids->n);
		r[1] = Int32GetDatum(n);
		if (one_by_one)
			stmt = v11 ? &stmt_release_child : &stmt_release_child_1_0;
		else
			stmt = v11 ? &stmt_release_children : &stmt_release_children_1_0;
		nrows = pq_exec(stmt, r, NULL, 0);
		for (int i = 0; i < nrows; i++)
		{
			bool		isnull;

			if (DatumGetBool(pq_get_attr(i, 2, &isnull)))
				queues = list_append_unique(queues, makeString(pq_get_text(i, 1)));
			if (DatumGetBool(pq_get_attr(i, 3, &isnull)))
				pq_idlist_add(not_needed, DatumGetInt64(pq_get_attr(i, 4, &isnull)));
		}
		SPI_freetuptable(SPI_tuptable);
		if (!one_by_one)
			pfree(DatumGetPointer(r[0]));
	}
	for (int i = 0; i < list_length(queues); i++)
		pq_notify_ready(strVal(list_nth(queues, i)));
}

/*
 * pq_cancel_not_needed cancels those of the jobs in ids that are todo
 * 'failure' jobs whose parents all succeeded (PQ_NOT_NEEDED_COND), with
 * the error PQ_ALL_SUCCEEDED_ERROR, and their descendants as any
 * cancellation does.  The caller has locked the jobs' rows, and runs as
 * bookkeeping (the status trigger does not fire for these changes).
 */
void
pq_cancel_not_needed(PQIdList *ids)
{
	Datum		v[2];
	PQIdList	cancelled = {0};
	List	   *locks;
	int			n;

	if (ids->n == 0 || !pq_schema_has_workflows())
		return;
	v[0] = pq_int8_array(ids->ids, ids->n);
	v[1] = CStringGetTextDatum(PQ_ALL_SUCCEEDED_ERROR);
	locks = pq_lock_queues_of(v[0]);
	n = pq_exec(&stmt_cancel_not_needed, v, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		pq_idlist_add(&cancelled, DatumGetInt64(pq_get_attr(i, 1, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
	for (int i = 0; i < cancelled.n; i++)
		pq_cancel_descendants(cancelled.ids[i], "was cancelled",
							  psprintf("was cancelled (job %lld was cancelled)",
									   (long long) cancelled.ids[i]));
	pq_refresh_locks(locks);
}

/*
 * pq_release_children_of decrements pending_parents of every child of the
 * jobs in parents, which have just succeeded, by the number of its parents
 * among them, and notifies the queues of children that became ready.  The
 * children are locked first, in id order, in one statement, so that
 * parents finishing at once cannot deadlock on them; the second of two
 * such transactions waits for the first and then sees its decrement (each
 * statement takes a new snapshot): a child is released exactly once.
 * Then one statement decrements all the children with one parent among
 * them, one more each other number of parents.  Both statements are
 * lookups by primary key, planned once.
 */
void
pq_release_children_of(PQIdList *parents)
{
	Datum		v[1];
	int64	   *kids;
	int32	   *counts;
	int			nkids = 0;
	int32		max_count = 0;
	int			n;
	DepPair    *pairs = children_scan(parents, false, &n);
	PQIdList	not_needed = {0};

	if (n == 0)
		return;

	/* the pairs are ordered by child: count each child's rows */
	kids = palloc(sizeof(int64) * n);
	counts = palloc(sizeof(int32) * n);
	for (int i = 0; i < n; i++)
	{
		int64		child = pairs[i].child;

		if (nkids > 0 && kids[nkids - 1] == child)
			counts[nkids - 1]++;
		else
		{
			kids[nkids] = child;
			counts[nkids++] = 1;
		}
		max_count = Max(max_count, counts[nkids - 1]);
	}
	pfree(pairs);

	/* in id order either way (the pairs are sorted by child) */
	if (nkids <= PQ_FEW_CHILDREN)
		for (int i = 0; i < nkids; i++)
		{
			v[0] = Int64GetDatum(kids[i]);
			(void) pq_exec(&stmt_lock_child, v, NULL, 0);
			SPI_freetuptable(SPI_tuptable);
		}
	else
	{
		v[0] = pq_int8_array(kids, nkids);
		(void) pq_exec(&stmt_lock_children, v, NULL, 0);
		SPI_freetuptable(SPI_tuptable);
	}

	for (int32 c = 1; c <= max_count; c++)
	{
		PQIdList	with_c = {0};

		for (int i = 0; i < nkids; i++)
			if (counts[i] == c)
				pq_idlist_add(&with_c, kids[i]);
		if (with_c.n > 0)
			release_children_by(&with_c, c, &not_needed);
		if (with_c.ids)
			pfree(with_c.ids);
	}

	/* 'failure' children whose parents all succeeded (rare: extra work) */
	if (not_needed.n > 0)
		pq_cancel_not_needed(&not_needed);
}

/*
 * pq_release_children is pq_release_children_of for one parent.
 */
void
pq_release_children(int64 parent)
{
	PQIdList	parents = {0};

	pq_idlist_add(&parents, parent);
	pq_release_children_of(&parents);
}

/*
 * pq_parents_with_children returns those of the jobs in ids that have
 * children, in the order of ids.
 */
PQIdList
pq_parents_with_children(PQIdList *ids)
{
	PQIdList	with = {0};
	int			n;
	DepPair    *pairs = children_scan(ids, true, &n);
	int64	   *has = palloc(sizeof(int64) * Max(n, 1));

	/* at most one pair per parent: sort the parents, then look them up */
	for (int i = 0; i < n; i++)
		has[i] = pairs[i].parent;
	qsort(has, n, sizeof(int64), cmp_int64);
	for (int i = 0; i < ids->n; i++)
		if (bsearch(&ids->ids[i], has, n, sizeof(int64), cmp_int64) != NULL)
			pq_idlist_add(&with, ids->ids[i]);
	pfree(has);
	pfree(pairs);
	return with;
}

/*
 * count_ended makes the children in children (a bigint[] Datum, one
 * element per dependency row from the jobs that changed) count sign = +1
 * more parents that ended without success, or -1 less (such a parent was
 * put back), see stmt_count_ended, and notifies the queues of children
 * that became ready.  Nothing on procq 1.0's table, which has no
 * failed_parents and only 'success' jobs.
 */
static void
count_ended(Datum children, int32 sign)
{
	Datum		v[2] = {children, Int32GetDatum(sign)};
	List	   *queues = NIL;
	int			n;

	if (!pq_schema_has_workflows())
		return;
	n = pq_exec(&stmt_count_ended, v, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		if (DatumGetBool(pq_get_attr(i, 2, &isnull)))
			queues = list_append_unique(queues, makeString(pq_get_text(i, 1)));
	}
	SPI_freetuptable(SPI_tuptable);
	for (int i = 0; i < list_length(queues); i++)
		pq_notify_ready(strVal(list_nth(queues, i)));
}

/*
 * pq_parents_reopened makes the children of the jobs in parents, which had
 * ended without success and are no longer such (put back to todo, or set
 * to succeeded by a DBA), count them no longer: failed_parents goes down,
 * and 'completion' and 'failure' children wait for them again.  Only the
 * direct children: the caller revives cancelled ones
 * (pq_revive_descendants does both).
 */
void
pq_parents_reopened(PQIdList *parents)
{
	Datum		kids;
	Datum		their_parents;

	if (!pq_schema_has_workflows())
		return;
	if (!children_of(parents, &kids, &their_parents))
		return;
	count_ended(kids, -1);
}

/*
 * pq_cancel_descendants cancels, level by level, every todo 'success'
 * descendant of a job that ended without success (root, which was todo or
 * doing before).  Its children's error reads "parent job <id> <first>",
 * deeper ones "parent job <id> <deeper>".  Each cancelled job records in
 * cancelled_by the parent it was cancelled through, so that retrying the
 * root requeues exactly these jobs.  Every child of root and of each job
 * cancelled counts that parent in failed_parents; 'completion' and
 * 'failure' children are not cancelled but count it as final (and become
 * ready when it was the last), and the walk does not go on below them:
 * their children follow their own conditions when they end.
 */
void
pq_cancel_descendants(int64 root, const char *first, const char *deeper)
{
	PQIdList	frontier = {0};
	List	   *locks = NIL;
	Datum		v[3];

	pq_idlist_add(&frontier, root);
	v[2] = CStringGetTextDatum(first);

	while (frontier.n > 0 && children_of(&frontier, &v[0], &v[1]))
	{
		PQIdList	next = {0};
		int			n;

		locks = list_concat(locks, pq_lock_queues_of(v[0]));
		count_ended(v[0], 1);
		n = pq_exec(pq_schema_has_workflows() ? &stmt_cancel_children
					: &stmt_cancel_children_1_0, v, NULL, 0);
		for (int i = 0; i < n; i++)
		{
			bool		isnull;

			pq_idlist_add(&next, DatumGetInt64(pq_get_attr(i, 1, &isnull)));
		}
		SPI_freetuptable(SPI_tuptable);
		pfree(DatumGetPointer(v[0]));
		pfree(DatumGetPointer(v[1]));
		if (frontier.ids)
			pfree(frontier.ids);
		frontier = next;
		v[2] = CStringGetTextDatum(deeper);
	}

	pq_refresh_locks(locks);
}

/*
 * reblame records, for children that stay cancelled, the other failed or
 * cancelled parent they now wait on (blame) and how it ended (hows, a List
 * of C strings), so that retrying that parent requeues them.
 */
static void
reblame(PQIdList *blamed, PQIdList *blame, List *hows)
{
	Datum	   *how_elems = palloc(sizeof(Datum) * blamed->n);
	Datum		r[3];

	for (int i = 0; i < blamed->n; i++)
		how_elems[i] = CStringGetTextDatum((char *) list_nth(hows, i));
	r[0] = pq_int8_array(blamed->ids, blamed->n);
	r[1] = pq_int8_array(blame->ids, blame->n);
	r[2] = PointerGetDatum(construct_array(how_elems, blamed->n, TEXTOID,
										   -1, false, TYPALIGN_INT));
	pq_exec(&stmt_reblame, r, NULL, 0);
}

/* A child about to come back to todo that has a queueing_lock. */
typedef struct QlockChild
{
	char	   *qlock;
	int64		id;
} QlockChild;

/*
 * cmp_qlock_child orders QlockChild entries by queueing_lock, then id.
 */
static int
cmp_qlock_child(const void *a, const void *b)
{
	const QlockChild *x = (const QlockChild *) a;
	const QlockChild *y = (const QlockChild *) b;
	int			c = strcmp(x->qlock, y->qlock);

	if (c != 0)
		return c;
	return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

/*
 * cmp_cstring_ptr orders C strings (through pointers) for qsort and bsearch.
 */
static int
cmp_cstring_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * filter_queueing_locks removes from *revive the children that must stay
 * cancelled because of their queueing_lock: at most one job per value may
 * be todo.  A value a todo job already holds keeps every such child
 * cancelled; otherwise the child with the lowest id takes it, and the
 * others stay.  Each that stays gets an error naming the holder; a retry
 * thus never fails on the unique index, and never puts two jobs with one
 * queueing_lock into todo.  The queueing locks' advisory locks are taken
 * first (in value order), as defer and finish_job do, so that the holders
 * read are still the holders when the children come back (a defer of the
 * same value that is not committed yet is waited for, and then seen).
 */
static void
filter_queueing_locks(PQIdList *revive, QlockChild *kids, int nkids)
{
	PQIdList	holders = {0};
	PQIdList	stay = {0};
	PQIdList	stay_holders = {0};
	char	  **values = palloc(sizeof(char *) * nkids);
	Datum	   *elems = palloc(sizeof(Datum) * nkids);
	int			nvalues = 0;
	int			nheld;
	Datum		v[2];

	qsort(kids, nkids, sizeof(QlockChild), cmp_qlock_child);
	for (int i = 0; i < nkids; i++)
		if (nvalues == 0 || strcmp(values[nvalues - 1], kids[i].qlock) != 0)
		{
			values[nvalues] = kids[i].qlock;
			elems[nvalues++] = CStringGetTextDatum(kids[i].qlock);
		}
	for (int i = 0; i < nvalues; i++)
		(void) pq_lock_queueing_key(values[i], false);

	/* holders[i]: the todo job holding values[i], or 0 */
	v[0] = PointerGetDatum(construct_array(elems, nvalues, TEXTOID, -1, false,
										   TYPALIGN_INT));
	for (int i = 0; i < nvalues; i++)
		pq_idlist_add(&holders, 0);
	nheld = pq_exec(&stmt_queueing_holders, v, NULL, 0);
	for (int r = 0; r < nheld; r++)
	{
		char	   *value = pq_get_text(r, 1);
		char	  **at = bsearch(&value, values, nvalues, sizeof(char *), cmp_cstring_ptr);
		bool		isnull;

		if (at != NULL)
			holders.ids[at - values] = DatumGetInt64(pq_get_attr(r, 2, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);

	/* per value, in id order: the first comes back unless it is held */
	for (int i = 0, k = 0; i < nkids; i++)
	{
		while (strcmp(values[k], kids[i].qlock) != 0)
			k++;
		if (holders.ids[k] == 0)
		{
			holders.ids[k] = kids[i].id;
			continue;
		}
		pq_idlist_add(&stay, kids[i].id);
		pq_idlist_add(&stay_holders, holders.ids[k]);
	}
	if (stay.n == 0)
		return;

	v[0] = pq_int8_array(stay.ids, stay.n);
	v[1] = pq_int8_array(stay_holders.ids, stay_holders.n);
	(void) pq_exec(&stmt_keep_cancelled, v, NULL, 0);

	/* the others come back, in their order */
	{
		int			out = 0;

		qsort(stay.ids, stay.n, sizeof(int64), cmp_int64);
		for (int i = 0; i < revive->n; i++)
			if (bsearch(&revive->ids[i], stay.ids, stay.n, sizeof(int64), cmp_int64) == NULL)
				revive->ids[out++] = revive->ids[i];
		revive->n = out;
	}
}

/*
 * revive_level handles one level of pq_revive_descendants: of the children
 * (and their parents: two parallel bigint[] Datums) that were cancelled
 * through the frontier, those without another failed or cancelled parent
 * go back to todo and are added to *next, unless their queueing_lock keeps
 * them cancelled (filter_queueing_locks); the others are reblamed.  Their
 * lock queues are added to *locks.
 */
static void
revive_level(Datum *v, PQIdList *next, List **locks)
{
	PQIdList	revive = {0};
	PQIdList	blamed = {0};
	PQIdList	blame = {0};
	List	   *hows = NIL;
	QlockChild *qkids = NULL;
	int			nqkids = 0;
	int			n;

	/*
	 * Their parents are locked first, as defer does: a parent failing right
	 * now is then seen failed, and the child stays cancelled, instead of
	 * coming back to wait for a parent that will never succeed.
	 */
	(void) pq_exec(&stmt_lock_parents_of, v, NULL, 0);
	SPI_freetuptable(SPI_tuptable);
	n = pq_exec(&stmt_revive_candidates, v, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(pq_get_attr(i, 1, &isnull));
		Datum		parent = pq_get_attr(i, 2, &isnull);

		if (isnull)
		{
			char	   *qlock = pq_get_text(i, 4);

			pq_idlist_add(&revive, id);
			if (qlock != NULL)
			{
				if (qkids == NULL)
					qkids = palloc(sizeof(QlockChild) * n);
				qkids[nqkids].qlock = qlock;
				qkids[nqkids++].id = id;
			}
		}
		else
		{
			pq_idlist_add(&blamed, id);
			pq_idlist_add(&blame, DatumGetInt64(parent));
			hows = lappend(hows, strcmp(pq_get_text(i, 3), "failed") == 0
						   ? "failed" : "was cancelled");
		}
	}
	SPI_freetuptable(SPI_tuptable);

	if (blamed.n > 0)
		reblame(&blamed, &blame, hows);
	if (nqkids > 0)
		filter_queueing_locks(&revive, qkids, nqkids);

	if (revive.n > 0)
	{
		Datum		r[1] = {pq_int8_array(revive.ids, revive.n)};

		*locks = list_concat(*locks, pq_lock_queues_of(r[0]));
		n = pq_exec(&stmt_revive, r, NULL, 0);
		for (int i = 0; i < n; i++)
		{
			bool		isnull;

			pq_idlist_add(next, DatumGetInt64(pq_get_attr(i, 1, &isnull)));
			if (pq_get_text(i, 3) == NULL &&
				DatumGetBool(pq_get_attr(i, 4, &isnull)))
				pq_notify_ready(pq_get_text(i, 2));
		}
		SPI_freetuptable(SPI_tuptable);
	}
}

/*
 * pq_revive_descendants puts back to todo, level by level, the descendants
 * that were cancelled through a job that has just been requeued.  Every
 * child of root and of each revived job counts that parent no longer in
 * failed_parents, and 'completion' and 'failure' children wait for it
 * again (a todo one is no longer ready; one that started or ended only has
 * its counters changed).  A child
 * that still has another failed or cancelled parent stays cancelled, and
 * is blamed on that parent instead, so that retrying it requeues the child.
 */
void
pq_revive_descendants(int64 root)
{
	PQIdList	frontier = {0};
	List	   *locks = NIL;
	Datum		v[2];

	pq_idlist_add(&frontier, root);

	while (frontier.n > 0 && children_of(&frontier, &v[0], &v[1]))
	{
		PQIdList	next = {0};

		count_ended(v[0], -1);
		revive_level(v, &next, &locks);
		pfree(DatumGetPointer(v[0]));
		pfree(DatumGetPointer(v[1]));
		if (frontier.ids)
			pfree(frontier.ids);
		frontier = next;
	}

	pq_refresh_locks(locks);
}
