/*-------------------------------------------------------------------------
 *
 * cascade.c
 *	  Graph walks: releasing the children of a job that succeeded,
 *	  cancelling the descendants of one that ended without success, and
 *	  requeueing those descendants when it is retried.
 *
 * Invariant kept here: pending_parents is the number of the job's parents
 * that have not succeeded.  A succeeded parent releases its children; a
 * parent that fails for good, is cancelled or is deleted before it
 * succeeded cancels every waiting descendant.
 *
 * The walks go one level per statement, iteratively: a chain of any length
 * takes no stack, and each level's statement runs with a fresh snapshot,
 * so it sees children whose defer committed while we waited for a row lock
 * on their parent.  They look up children first and then change them by
 * primary key (id = ANY(...)): that plan stays right even before the table
 * has statistics, where a join could choose a full scan per graph level.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/array.h"
#include "utils/builtins.h"

#include "args.h"
#include "cascade.h"
#include "locks.h"
#include "notify.h"
#include "procq.h"
#include "spi_exec.h"

static PQStatement stmt_children_of = PQ_STATEMENT(
	"SELECT job_id, depends_on FROM procq.job_dependencies"
	" WHERE depends_on = ANY($1) ORDER BY job_id",
	1, INT8ARRAYOID);

static PQStatement stmt_release_children = PQ_STATEMENT(
	"WITH children AS (SELECT id FROM procq.jobs WHERE id = ANY($1)"
	"  ORDER BY id FOR NO KEY UPDATE),"
	" released AS (UPDATE procq.jobs j"
	"  SET pending_parents = j.pending_parents - 1"
	"  FROM children c WHERE j.id = ANY($1) AND j.id = c.id"
	"  RETURNING j.queue, j." PQ_READY_COND " AS ready)"
	" SELECT DISTINCT queue FROM released WHERE ready",
	1, INT8ARRAYOID);

static PQStatement stmt_cancel_children = PQ_STATEMENT(
	"UPDATE procq.jobs j SET status = 'cancelled',"
	" finished_at = clock_timestamp(), cancelled_by = c.parent,"
	" error = 'parent job ' || c.parent || ' ' || $3,"
	" lock_blocked = false, delayed = false"
	" FROM unnest($1::bigint[], $2::bigint[]) AS c(child, parent)"
	" WHERE j.id = ANY($1) AND j.id = c.child AND j.status = 'todo'"
	" RETURNING j.id",
	3, INT8ARRAYOID, INT8ARRAYOID, TEXTOID);

static PQStatement stmt_lock_parents_of = PQ_STATEMENT(
	"SELECT p.id FROM procq.jobs p WHERE p.id = ANY (ARRAY("
	" SELECT d.depends_on FROM procq.job_dependencies d"
	" WHERE d.job_id = ANY($1))) ORDER BY p.id FOR SHARE",
	1, INT8ARRAYOID);

static PQStatement stmt_revive_candidates = PQ_STATEMENT(
	"SELECT s.id, s.blame,"
	" (SELECT p.status::text FROM procq.jobs p WHERE p.id = s.blame)"
	" FROM (SELECT j.id, (SELECT d.depends_on FROM procq.job_dependencies d"
	"   WHERE d.job_id = j.id AND (SELECT p.status FROM procq.jobs p"
	"    WHERE p.id = d.depends_on) IN ('failed', 'cancelled')"
	"   ORDER BY d.depends_on LIMIT 1) AS blame"
	"  FROM procq.jobs j"
	"  JOIN unnest($1::bigint[], $2::bigint[]) AS c(child, parent)"
	"   ON j.id = c.child"
	"  WHERE j.id = ANY($1) AND j.status = 'cancelled'"
	"  AND j.cancelled_by = c.parent"
	/* one whose queueing_lock another job holds stays cancelled */
	"  AND NOT EXISTS (SELECT 1 FROM procq.jobs q WHERE q.status = 'todo'"
	"   AND q.queueing_lock = j.queueing_lock)) s",
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

/*
 * children_of finds the dependency rows whose parent is in parents, and
 * returns the children and their parent as two parallel bigint[] Datums
 * (a child with two parents among them appears twice).  Returns false when
 * there are none.
 */
static bool
children_of(PQIdList *parents, Datum *children, Datum *their_parents)
{
	Datum		v[1];
	PQIdList	kids = {0};
	PQIdList	ps = {0};
	int			n;

	v[0] = pq_int8_array(parents->ids, parents->n);
	n = pq_exec(&stmt_children_of, v, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		pq_idlist_add(&kids, DatumGetInt64(pq_get_attr(i, 1, &isnull)));
		pq_idlist_add(&ps, DatumGetInt64(pq_get_attr(i, 2, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
	pfree(DatumGetPointer(v[0]));
	if (n == 0)
		return false;
	*children = pq_int8_array(kids.ids, kids.n);
	*their_parents = pq_int8_array(ps.ids, ps.n);
	pfree(kids.ids);
	pfree(ps.ids);
	return true;
}

/*
 * pq_release_children decrements pending_parents of every child of a job
 * that just succeeded, and notifies the queues of children that became
 * ready.  The children are locked in id order, so that parents finishing
 * at once cannot deadlock on them; the second of two such parents waits
 * for the first and sees its decrement: the child is released exactly
 * once.
 */
void
pq_release_children(int64 parent)
{
	PQIdList	parents = {0};
	Datum		v[2];
	int			nqueues;

	pq_idlist_add(&parents, parent);
	if (!children_of(&parents, &v[0], &v[1]))
		return;
	nqueues = pq_exec(&stmt_release_children, v, NULL, 0);
	for (int i = 0; i < nqueues; i++)
		pq_notify_ready(pq_get_text(i, 1));
	SPI_freetuptable(SPI_tuptable);
}

/*
 * pq_cancel_descendants cancels, level by level, every todo descendant of
 * a job that ended without success.  Its children's error reads "parent
 * job <id> <first>", deeper ones "parent job <id> <deeper>".  Each
 * cancelled job records in cancelled_by the parent it was cancelled
 * through, so that retrying the root requeues exactly these jobs.
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
		n = pq_exec(&stmt_cancel_children, v, NULL, 0);
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

/*
 * revive_level handles one level of pq_revive_descendants: of the children
 * (and their parents: two parallel bigint[] Datums) that were cancelled
 * through the frontier, those without another failed or cancelled parent
 * go back to todo and are added to *next; the others are reblamed.  Their
 * lock queues are added to *locks.
 */
static void
revive_level(Datum *v, PQIdList *next, List **locks)
{
	PQIdList	revive = {0};
	PQIdList	blamed = {0};
	PQIdList	blame = {0};
	List	   *hows = NIL;
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
			pq_idlist_add(&revive, id);
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
 * that were cancelled through a job that has just been requeued.  A child
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

		revive_level(v, &next, &locks);
		pfree(DatumGetPointer(v[0]));
		pfree(DatumGetPointer(v[1]));
		if (frontier.ids)
			pfree(frontier.ids);
		frontier = next;
	}

	pq_refresh_locks(locks);
}
