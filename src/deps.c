/*-------------------------------------------------------------------------
 *
 * deps.c
 *	  Dependency and lock bookkeeping, and the triggers that run it.
 *
 * Invariants kept here (see the columns of procq.jobs):
 *
 *	- pending_parents is the number of the job's parents that have not
 *	  succeeded.  A succeeded parent releases its children; a parent that
 *	  fails for good, is cancelled or is deleted before it succeeded cancels
 *	  every waiting descendant.
 *	- In each lock queue (live jobs sharing a lock value) at most one job is
 *	  not lock_blocked: the doing one if there is one, else the todo job with
 *	  the lowest id.
 *
 * Cascades walk the graph one level per statement, iteratively: a chain of
 * any length takes no stack, and each level's statement runs with a fresh
 * snapshot, so it sees children whose defer committed while we waited for
 * a row lock on their parent.
 *
 * The status trigger is the single place where a change of status has its
 * consequences, whether the API or a DBA's UPDATE made it.  While it runs,
 * the status changes its own statements make must not trigger it again
 * (the walk handles them); pq_bookkeeping_depth says so.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"

#include "procq.h"

PG_FUNCTION_INFO_V1(procq_jobs_status_changed);
PG_FUNCTION_INFO_V1(procq_jobs_status_normalize);
PG_FUNCTION_INFO_V1(procq_jobs_deleted);
PG_FUNCTION_INFO_V1(procq_dependency_deleted);

/*
 * Greater than zero while this backend runs bookkeeping; the status
 * trigger then leaves the changes to the code that is running.  Restored
 * by PG_FINALLY when an error escapes.
 */
static int	pq_bookkeeping_depth = 0;

/* A list of ids that grows as a walk finds them. */
typedef struct IdList
{
	int64	   *ids;
	int			n;
	int			cap;
} IdList;

/*
 * idlist_add appends an id to a list.
 */
static void
idlist_add(IdList *list, int64 id)
{
	if (list->n == list->cap)
	{
		list->cap = Max(16, list->cap * 2);
		list->ids = list->ids
			? repalloc(list->ids, sizeof(int64) * list->cap)
			: palloc(sizeof(int64) * list->cap);
	}
	list->ids[list->n++] = id;
}

/*
 * ids_datum builds a bigint[] Datum from a list of ids.
 */
static Datum
ids_datum(IdList *list)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list->n, 1));
	Datum		result;

	for (int i = 0; i < list->n; i++)
		elems[i] = Int64GetDatum(list->ids[i]);
	result = PointerGetDatum(construct_array(elems, list->n, INT8OID,
											 sizeof(int64), FLOAT8PASSBYVAL,
											 TYPALIGN_DOUBLE));
	pfree(elems);
	return result;
}

/*
 * cmp_cstring_cells orders a List of C strings for list_sort.
 */
static int
cmp_cstring_cells(const ListCell *a, const ListCell *b)
{
	return strcmp((const char *) lfirst(a), (const char *) lfirst(b));
}

/*
 * refresh_locks moves along each lock queue named in locks (a List of C
 * strings, duplicates allowed), each once.
 */
static void
refresh_locks(List *locks)
{
	char	   *previous = NULL;
	ListCell   *lc;

	list_sort(locks, cmp_cstring_cells);
	foreach(lc, locks)
	{
		char	   *lock = (char *) lfirst(lc);

		if (previous == NULL || strcmp(previous, lock) != 0)
			pq_refresh_lock(lock);
		previous = lock;
	}
}

/*
 * pq_refresh_lock restores the lock queue invariant for one lock value
 * after a job joined or left it: no todo job may start while one is doing,
 * else only the todo job with the lowest id may.
 *
 * Changes to a lock queue are serialized by pq_lock_key, except fetching
 * its head, which takes no advisory lock.  Only the head is fetchable, so
 * the one race is a fetch of the current todo head while we decide that
 * another job should head the queue.  We therefore block the old head
 * first: that UPDATE waits for a fetch in progress, and finds nothing to
 * update if the fetch took the job, which is then running and keeps
 * every other job blocked.
 */
void
pq_refresh_lock(const char *lock)
{
	Datum		v[2];
	int			nheads;
	int64	   *todo_heads;
	int			ntodo_heads = 0;
	bool		doing = false;
	int64		desired = 0;
	bool		isnull;

	pq_lock_key(lock);

	v[0] = CStringGetTextDatum(lock);
	nheads = pq_exec(PQ_LOCK_HEADS, v, NULL, 0);
	todo_heads = palloc(sizeof(int64) * Max(nheads, 1));
	for (int i = 0; i < nheads; i++)
	{
		char	   *status = pq_get_text(i, 2);

		if (strcmp(status, "doing") == 0)
			doing = true;
		else
			todo_heads[ntodo_heads++] = DatumGetInt64(pq_get_attr(i, 1, &isnull));
	}

	if (!doing && pq_exec(PQ_LOCK_FIRST_TODO, v, NULL, 1) == 1)
		desired = DatumGetInt64(pq_get_attr(0, 1, &isnull));

	for (int i = 0; i < ntodo_heads; i++)
	{
		if (todo_heads[i] == desired)
		{
			desired = 0;		/* already the head */
			continue;
		}
		v[0] = Int64GetDatum(todo_heads[i]);
		v[1] = BoolGetDatum(true);
		if (pq_exec(PQ_SET_LOCK_BLOCKED, v, NULL, 1) == 0)
			desired = 0;		/* it was fetched meanwhile: now doing */
	}

	if (desired != 0)
	{
		v[0] = Int64GetDatum(desired);
		v[1] = BoolGetDatum(false);
		if (pq_exec(PQ_SET_LOCK_BLOCKED, v, NULL, 1) == 1 &&
			DatumGetBool(pq_get_attr(0, 2, &isnull)))
			pq_notify_ready(pq_get_text(0, 1));
	}
}

/*
 * children_of finds the dependency rows whose parent is in parents, and
 * returns the children and their parent as two parallel bigint[] Datums
 * (a child with two parents among them appears twice).  Returns false when
 * there are none.
 *
 * The walks below look up children first and then change them by primary
 * key (id = ANY(...)): that plan stays right even before the table has
 * statistics, where a join could choose a full scan per graph level.
 */
static bool
children_of(IdList *parents, Datum *children, Datum *their_parents)
{
	Datum		v[1];
	IdList		kids = {0};
	IdList		ps = {0};
	int			n;

	v[0] = ids_datum(parents);
	n = pq_exec(PQ_CHILDREN_OF, v, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		idlist_add(&kids, DatumGetInt64(pq_get_attr(i, 1, &isnull)));
		idlist_add(&ps, DatumGetInt64(pq_get_attr(i, 2, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
	pfree(DatumGetPointer(v[0]));
	if (n == 0)
		return false;
	*children = ids_datum(&kids);
	*their_parents = ids_datum(&ps);
	pfree(kids.ids);
	pfree(ps.ids);
	return true;
}

/*
 * lock_queues_of takes the advisory locks of the lock queues of the given
 * jobs (a bigint[] Datum), in a fixed order, before the caller changes
 * their rows (see pq_lock_key), and returns the lock values as a List.
 */
static List *
lock_queues_of(Datum ids)
{
	Datum		v[1] = {ids};
	int			n = pq_exec(PQ_LOCKS_OF, v, NULL, 0);
	List	   *locks = NIL;
	ListCell   *lc;

	for (int i = 0; i < n; i++)
		locks = lappend(locks, pq_get_text(i, 1));
	SPI_freetuptable(SPI_tuptable);
	foreach(lc, locks)
		pq_lock_key((char *) lfirst(lc));
	return locks;
}

/*
 * release_children decrements pending_parents of every child of a job that
 * just succeeded, and notifies the queues of children that became ready.
 * The children are locked in id order, so that parents finishing at once
 * cannot deadlock on them; the second of two such parents waits for the
 * first and sees its decrement: the child is released exactly once.
 */
static void
release_children(int64 parent)
{
	IdList		parents = {0};
	Datum		v[2];
	int			nqueues;

	idlist_add(&parents, parent);
	if (!children_of(&parents, &v[0], &v[1]))
		return;
	nqueues = pq_exec(PQ_RELEASE_CHILDREN, v, NULL, 0);
	for (int i = 0; i < nqueues; i++)
		pq_notify_ready(pq_get_text(i, 1));
	SPI_freetuptable(SPI_tuptable);
}

/*
 * cancel_descendants cancels, level by level, every todo descendant of a
 * job that ended without success.  Its children's error reads "parent job
 * <id> <first>", deeper ones "parent job <id> <deeper>".  Each cancelled
 * job records in cancelled_by the parent it was cancelled through, so that
 * retrying the root requeues exactly these jobs.
 */
static void
cancel_descendants(int64 root, const char *first, const char *deeper)
{
	IdList		frontier = {0};
	List	   *locks = NIL;
	Datum		v[3];

	idlist_add(&frontier, root);
	v[2] = CStringGetTextDatum(first);

	while (frontier.n > 0 && children_of(&frontier, &v[0], &v[1]))
	{
		IdList		next = {0};
		int			n;

		locks = list_concat(locks, lock_queues_of(v[0]));
		n = pq_exec(PQ_CANCEL_CHILDREN, v, NULL, 0);
		for (int i = 0; i < n; i++)
		{
			bool		isnull;

			idlist_add(&next, DatumGetInt64(pq_get_attr(i, 1, &isnull)));
		}
		SPI_freetuptable(SPI_tuptable);
		pfree(DatumGetPointer(v[0]));
		pfree(DatumGetPointer(v[1]));
		if (frontier.ids)
			pfree(frontier.ids);
		frontier = next;
		v[2] = CStringGetTextDatum(deeper);
	}

	refresh_locks(locks);
}

/*
 * revive_descendants puts back to todo, level by level, the descendants
 * that were cancelled through a job that has just been requeued.  A child
 * that still has another failed or cancelled parent stays cancelled, and
 * is blamed on that parent instead, so that retrying it requeues the child.
 */
static void
revive_descendants(int64 root)
{
	IdList		frontier = {0};
	List	   *locks = NIL;
	Datum		v[2];

	idlist_add(&frontier, root);

	while (frontier.n > 0 && children_of(&frontier, &v[0], &v[1]))
	{
		IdList		revive = {0};
		IdList		blamed = {0};
		IdList		blame = {0};
		List	   *hows = NIL;
		IdList		next = {0};
		int			n;

		/*
		 * Which children come back, and which stay cancelled (and why).
		 * Their parents are locked first, as defer does: a parent failing
		 * right now is then seen failed, and the child stays cancelled,
		 * instead of coming back to wait for a parent that will never
		 * succeed.
		 */
		(void) pq_exec(PQ_LOCK_PARENTS_OF, v, NULL, 0);
		SPI_freetuptable(SPI_tuptable);
		n = pq_exec(PQ_REVIVE_CANDIDATES, v, NULL, 0);
		for (int i = 0; i < n; i++)
		{
			bool		isnull;
			int64		id = DatumGetInt64(pq_get_attr(i, 1, &isnull));
			Datum		parent = pq_get_attr(i, 2, &isnull);

			if (isnull)
				idlist_add(&revive, id);
			else
			{
				idlist_add(&blamed, id);
				idlist_add(&blame, DatumGetInt64(parent));
				hows = lappend(hows, strcmp(pq_get_text(i, 3), "failed") == 0
							   ? "failed" : "was cancelled");
			}
		}
		SPI_freetuptable(SPI_tuptable);

		if (blamed.n > 0)
		{
			Datum	   *how_elems = palloc(sizeof(Datum) * blamed.n);
			Datum		r[3];

			for (int i = 0; i < blamed.n; i++)
				how_elems[i] = CStringGetTextDatum((char *) list_nth(hows, i));
			r[0] = ids_datum(&blamed);
			r[1] = ids_datum(&blame);
			r[2] = PointerGetDatum(construct_array(how_elems, blamed.n, TEXTOID,
												   -1, false, TYPALIGN_INT));
			pq_exec(PQ_REBLAME, r, NULL, 0);
		}

		if (revive.n > 0)
		{
			Datum		r[1] = {ids_datum(&revive)};

			locks = list_concat(locks, lock_queues_of(r[0]));
			n = pq_exec(PQ_REVIVE, r, NULL, 0);
			for (int i = 0; i < n; i++)
			{
				bool		isnull;

				idlist_add(&next, DatumGetInt64(pq_get_attr(i, 1, &isnull)));
				if (pq_get_text(i, 3) == NULL &&
					DatumGetBool(pq_get_attr(i, 4, &isnull)))
					pq_notify_ready(pq_get_text(i, 2));
			}
			SPI_freetuptable(SPI_tuptable);
		}

		pfree(DatumGetPointer(v[0]));
		pfree(DatumGetPointer(v[1]));
		if (frontier.ids)
			pfree(frontier.ids);
		frontier = next;
	}

	refresh_locks(locks);
}

/*
 * The columns of a job row that the triggers need.
 */
typedef struct JobRow
{
	int64		id;
	char	   *status;
	char	   *queue;
	char	   *lock;			/* NULL when none */
	bool		ready;			/* todo and fetchable */
} JobRow;

/*
 * job_row_from reads a JobRow from a row of procq.jobs.
 */
static JobRow
job_row_from(HeapTuple tuple, TupleDesc desc)
{
	JobRow		row;
	bool		isnull;
	bool		pending_zero;
	bool		blocked;
	bool		delayed;

	row.id = DatumGetInt64(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "id"), &isnull));
	row.status = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "status"));
	row.queue = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "queue"));
	row.lock = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "lock"));
	pending_zero = DatumGetInt32(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "pending_parents"), &isnull)) == 0;
	blocked = DatumGetBool(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "lock_blocked"), &isnull));
	delayed = DatumGetBool(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "delayed"), &isnull));
	row.ready = strcmp(row.status, "todo") == 0 && pending_zero && !blocked && !delayed;
	return row;
}

/*
 * trigger_data checks that a trigger function was called the way the
 * install script declares it (AFTER or BEFORE, FOR EACH ROW), and returns
 * its TriggerData.
 */
static TriggerData *
trigger_data(FunctionCallInfo fcinfo, const char *name, bool after)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		(after ? !TRIGGER_FIRED_AFTER(trigdata->tg_event)
		 : !TRIGGER_FIRED_BEFORE(trigdata->tg_event)) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be fired as an %s ... FOR EACH ROW trigger",
						name, after ? "AFTER" : "BEFORE")));
	return trigdata;
}

/* Columns that procq_jobs_status_normalize may set, and their values. */
typedef struct ColumnChanges
{
	int			n;
	int			cols[8];
	Datum		values[8];
	bool		nulls[8];
} ColumnChanges;

/*
 * set_column records that column name of the row becomes value (or NULL),
 * unless it already is.
 */
static void
set_column(ColumnChanges *changes, HeapTuple tuple, TupleDesc desc,
		   const char *name, Datum value, bool isnull)
{
	int			attnum = SPI_fnumber(desc, name);
	Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
	bool		was_null;
	Datum		was = SPI_getbinval(tuple, desc, attnum, &was_null);

	if (was_null && isnull)
		return;
	if (!was_null && !isnull &&
		datumIsEqual(was, value, att->attbyval, att->attlen))
		return;
	Assert(changes->n < lengthof(changes->cols));
	changes->cols[changes->n] = attnum;
	changes->values[changes->n] = value;
	changes->nulls[changes->n] = isnull;
	changes->n++;
}

/*
 * procq.jobs_status_normalize(): BEFORE UPDATE OF status ON procq.jobs.
 *
 * Makes the rest of the row agree with a new status, so that a DBA can
 * write UPDATE procq.jobs SET status = 'cancelled' WHERE ...: a final
 * status gets finished_at, a job that is not todo is neither delayed nor
 * lock_blocked, only a doing job has a lease, only a cancelled job has
 * cancelled_by, and a failed or cancelled job put back to todo gets fresh
 * attempts and waits for its lock queue's hand-off.  The API's own
 * updates already agree, and pass through unchanged.
 */
Datum
procq_jobs_status_normalize(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = trigger_data(fcinfo, "procq.jobs_status_normalize", false);
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	HeapTuple	tuple = trigdata->tg_newtuple;
	char	   *old_status = SPI_getvalue(trigdata->tg_trigtuple, desc, SPI_fnumber(desc, "status"));
	char	   *status = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "status"));
	bool		todo = strcmp(status, "todo") == 0;
	bool		final = !todo && strcmp(status, "doing") != 0;
	bool		isnull;
	ColumnChanges changes = {0};

	if (!todo)
	{
		set_column(&changes, tuple, desc, "delayed", BoolGetDatum(false), false);
		set_column(&changes, tuple, desc, "lock_blocked", BoolGetDatum(false), false);
	}
	set_column(&changes, tuple, desc, "lease_expires_at", (Datum) 0, true);
	if (strcmp(status, "cancelled") != 0)
		set_column(&changes, tuple, desc, "cancelled_by", (Datum) 0, true);
	if (!final)
		set_column(&changes, tuple, desc, "finished_at", (Datum) 0, true);
	else
	{
		(void) SPI_getbinval(tuple, desc, SPI_fnumber(desc, "finished_at"), &isnull);
		if (isnull)
			set_column(&changes, tuple, desc, "finished_at",
					   TimestampTzGetDatum(GetCurrentTimestamp()), false);
	}

	if (todo && (strcmp(old_status, "failed") == 0 || strcmp(old_status, "cancelled") == 0))
	{
		int32		attempts = DatumGetInt32(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "attempts"), &isnull));
		int32		max_attempts = DatumGetInt32(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "max_attempts"), &isnull));
		Datum		scheduled_at = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "scheduled_at"), &isnull);

		if (attempts >= max_attempts)
			set_column(&changes, tuple, desc, "attempts", Int32GetDatum(0), false);
		set_column(&changes, tuple, desc, "delayed",
				   BoolGetDatum(!isnull && DatumGetTimestampTz(scheduled_at) > GetCurrentTimestamp()),
				   false);
		(void) SPI_getbinval(tuple, desc, SPI_fnumber(desc, "lock"), &isnull);
		set_column(&changes, tuple, desc, "lock_blocked", BoolGetDatum(!isnull), false);
	}

	if (changes.n > 0)
		tuple = heap_modify_tuple_by_cols(tuple, desc, changes.n, changes.cols,
										  changes.values, changes.nulls);
	return PointerGetDatum(tuple);
}

/*
 * status_changed does what a job's change of status means for the other
 * jobs.  Called from the status trigger with SPI connected.
 */
static void
status_changed(JobRow *old, JobRow *new)
{
	bool		from_final_failure = strcmp(old->status, "failed") == 0 ||
		strcmp(old->status, "cancelled") == 0;

	if (strcmp(old->status, "succeeded") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld has succeeded and cannot change status",
						(long long) old->id),
				 errdetail("Its children may already have run."),
				 errhint("Defer a new job to run the task again.")));

	if (strcmp(new->status, "succeeded") == 0)
		release_children(new->id);
	else if (strcmp(new->status, "failed") == 0)
		cancel_descendants(new->id, "failed",
						   psprintf("was cancelled (job %lld failed)", (long long) new->id));
	else if (strcmp(new->status, "cancelled") == 0)
		cancel_descendants(new->id, "was cancelled",
						   psprintf("was cancelled (job %lld was cancelled)", (long long) new->id));
	else if (strcmp(new->status, "todo") == 0 && from_final_failure)
	{
		Datum		v[1] = {Int64GetDatum(new->id)};

		if (pq_exec(PQ_FAILED_PARENT, v, NULL, 1) == 1)
		{
			bool		isnull;
			int64		parent = DatumGetInt64(pq_get_attr(0, 1, &isnull));

			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("job %lld cannot go back to todo while its parent job %lld is %s",
							(long long) new->id, (long long) parent, pq_get_text(0, 2)),
					 errhint("Retry job %lld instead: that requeues its cancelled descendants too.",
							 (long long) parent)));
		}
		revive_descendants(new->id);
	}

	if (new->lock != NULL)
	{
		/* The hand-off decides whether the job may run now. */
		Datum		v[1] = {Int64GetDatum(new->id)};
		bool		isnull;

		pq_refresh_lock(new->lock);
		if (strcmp(new->status, "todo") == 0 &&
			pq_exec(PQ_JOB_EXISTS, v, NULL, 1) == 1 &&
			DatumGetBool(pq_get_attr(0, 5, &isnull)))
			pq_notify_ready(new->queue);
	}
	else if (new->ready)
		pq_notify_ready(new->queue);
}

/*
 * run_bookkeeping runs fn(arg1, arg2) with SPI connected and the
 * bookkeeping depth raised, restoring the depth if an error escapes (a
 * caller may catch the error in a subtransaction and go on).
 */
static void
run_bookkeeping(void (*fn) (void *, void *), void *arg1, void *arg2)
{
	pq_connect();
	pq_bookkeeping_depth++;
	PG_TRY();
	{
		fn(arg1, arg2);
	}
	PG_FINALLY();
	{
		pq_bookkeeping_depth--;
	}
	PG_END_TRY();
	pq_finish();
}

/*
 * status_changed_cb adapts status_changed to run_bookkeeping.
 */
static void
status_changed_cb(void *old, void *new)
{
	status_changed((JobRow *) old, (JobRow *) new);
}

/*
 * procq.jobs_status_changed(): AFTER UPDATE OF status ON procq.jobs.
 *
 * Fires (per its WHEN clause) when a job's status changed to anything but
 * doing.  Does nothing for the changes bookkeeping itself makes.
 */
Datum
procq_jobs_status_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = trigger_data(fcinfo, "procq.jobs_status_changed", true);
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	JobRow		old;
	JobRow		new;

	if (pq_bookkeeping_depth > 0)
		return PointerGetDatum(NULL);

	old = job_row_from(trigdata->tg_trigtuple, desc);
	new = job_row_from(trigdata->tg_newtuple, desc);
	run_bookkeeping(status_changed_cb, &old, &new);

	return PointerGetDatum(NULL);
}

/*
 * refresh_lock_cb adapts pq_refresh_lock to run_bookkeeping.
 */
static void
refresh_lock_cb(void *lock, void *unused)
{
	pq_refresh_lock((const char *) lock);
}

/*
 * procq.jobs_deleted(): AFTER DELETE ON procq.jobs, for live jobs with a
 * lock: the lock queue moves along.
 */
Datum
procq_jobs_deleted(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = trigger_data(fcinfo, "procq.jobs_deleted", true);
	JobRow		old = job_row_from(trigdata->tg_trigtuple,
								   trigdata->tg_relation->rd_att);

	if (old.lock != NULL)
		run_bookkeeping(refresh_lock_cb, old.lock, NULL);

	return PointerGetDatum(NULL);
}

/*
 * dependency_gone accounts for a deleted dependency row (child, parent).
 *
 * If the parent still exists, a DBA removed the dependency: the child
 * waits for one parent less.  If the parent was deleted, we learn whether
 * it had succeeded by recounting the child's unsucceeded parents: a
 * parent that had not succeeded was counted in pending_parents and is now
 * gone from the count.  Then the child, if it was waiting, is cancelled
 * with its descendants: a delete never releases a child.
 */
static void
dependency_gone(void *childp, void *parentp)
{
	int64		child = *(int64 *) childp;
	int64		parent = *(int64 *) parentp;
	Datum		v[3];
	bool		isnull;
	char	   *child_status;
	int32		pending;
	int32		now_pending;
	char	   *lock;
	char	   *how;

	IdList		parents = {0};
	char	   *parent_status = NULL;

	v[0] = Int64GetDatum(child);
	if (pq_exec(PQ_JOB_EXISTS, v, NULL, 1) == 0)
		return;					/* the child itself was deleted */
	lock = pq_get_text(0, 2);
	if (lock != NULL)
		pq_lock_key(lock);

	/*
	 * Lock the parent (if it still exists) before reading its status, as
	 * defer does: a parent succeeding right now is then seen succeeded, or
	 * sees the dependency gone; it cannot release the child a second time.
	 */
	idlist_add(&parents, parent);
	v[0] = ids_datum(&parents);
	if (pq_exec(PQ_LOCK_PARENTS, v, NULL, 1) == 1)
		parent_status = pq_get_text(0, 2);

	v[0] = Int64GetDatum(child);
	if (pq_exec(PQ_JOB_FOR_UPDATE, v, NULL, 1) == 0)
		return;
	child_status = pq_get_text(0, 1);
	pending = DatumGetInt32(pq_get_attr(0, 2, &isnull));

	if (parent_status != NULL)
	{
		/* The parent still exists: only a dependency was removed. */
		if (strcmp(parent_status, "succeeded") == 0)
			return;
		v[0] = Int64GetDatum(child);
		v[1] = Int32GetDatum(pending - 1);
		pq_exec(PQ_ADJUST_PENDING, v, NULL, 1);
		if (DatumGetBool(pq_get_attr(0, 2, &isnull)))
			pq_notify_ready(pq_get_text(0, 1));
		return;
	}

	if (pending == 0)
		return;					/* every parent had succeeded */
	v[0] = Int64GetDatum(child);
	pq_exec(PQ_COUNT_PENDING_PARENTS, v, NULL, 1);
	now_pending = DatumGetInt32(pq_get_attr(0, 1, &isnull));
	if (now_pending == pending)
		return;					/* the deleted parent had succeeded */

	/* Keep the count exact; the child is cancelled below, not released. */
	v[0] = Int64GetDatum(child);
	v[1] = Int32GetDatum(now_pending);
	pq_exec(PQ_ADJUST_PENDING, v, NULL, 1);
	if (strcmp(child_status, "todo") != 0)
		return;

	how = psprintf("was deleted before it succeeded");
	v[0] = Int64GetDatum(child);
	v[1] = Int64GetDatum(parent);
	v[2] = CStringGetTextDatum(psprintf("parent job %lld %s", (long long) parent, how));
	if (pq_exec(PQ_CANCEL_ORPHAN, v, NULL, 1) == 0)
		return;
	cancel_descendants(child, psprintf("was cancelled (job %lld %s)", (long long) parent, how),
					   psprintf("was cancelled (job %lld %s)", (long long) parent, how));
	if (lock != NULL)
		pq_refresh_lock(lock);
}

/*
 * procq.dependency_deleted(): AFTER DELETE ON procq.job_dependencies.
 */
Datum
procq_dependency_deleted(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = trigger_data(fcinfo, "procq.dependency_deleted", true);
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	bool		isnull;
	int64		child;
	int64		parent;

	child = DatumGetInt64(SPI_getbinval(trigdata->tg_trigtuple, desc,
										SPI_fnumber(desc, "job_id"), &isnull));
	parent = DatumGetInt64(SPI_getbinval(trigdata->tg_trigtuple, desc,
										 SPI_fnumber(desc, "depends_on"), &isnull));
	run_bookkeeping(dependency_gone, &child, &parent);

	return PointerGetDatum(NULL);
}
