/*-------------------------------------------------------------------------
 *
 * triggers.c
 *	  The trigger functions of procq.jobs and procq.job_dependencies.
 *
 * The status trigger is the single place where a change of status has its
 * consequences (cascade.c, locks.c), whether the API or a DBA's UPDATE
 * made it.  While it runs, the status changes its own statements make
 * must not trigger it again (the walk handles them); bookkeeping_depth
 * says so.
 *
 * The AFTER triggers fire once per statement and read the statement's rows
 * from its transition tables, directly (no SPI), so that a statement that
 * ends a hundred jobs does its bookkeeping in a few set-based statements,
 * and one that changes no status (a claim, a heartbeat) costs no query.
 * The rows are taken in the order the statement changed them, which is the
 * order in which row-level triggers would have seen them.
 *
 * Global state: bookkeeping_depth.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "catalog/namespace.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "args.h"
#include "cascade.h"
#include "jobs.h"
#include "locks.h"
#include "notify.h"
#include "procq.h"
#include "spi_exec.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(procq_jobs_status_changed);
PG_FUNCTION_INFO_V1(procq_jobs_status_normalize);
PG_FUNCTION_INFO_V1(procq_jobs_deleted);
PG_FUNCTION_INFO_V1(procq_dependency_deleted);
PG_FUNCTION_INFO_V1(procq_jobs_workflow_default);

/*
 * Greater than zero while this backend runs bookkeeping; the status
 * trigger then leaves the changes to the code that is running.  Restored
 * by PG_FINALLY when an error escapes.
 */
static int	bookkeeping_depth = 0;

static PQStatement stmt_job_for_update = PQ_STATEMENT(
	"SELECT status::text, pending_parents FROM procq.jobs"
	" WHERE id = $1 FOR UPDATE",
	1, INT8OID);

static PQStatement stmt_count_pending_parents = PQ_STATEMENT(
	"SELECT count(*)::int4 FROM procq.job_dependencies d"
	" JOIN procq.jobs p ON p.id = d.depends_on"
	" WHERE d.job_id = $1 AND p.status <> 'succeeded'",
	1, INT8OID);

static PQStatement stmt_job_for_update_1_1 = PQ_STATEMENT(
	"SELECT status::text, pending_parents, run_after, failed_parents,"
	" cancelled_by FROM procq.jobs WHERE id = $1 FOR UPDATE",
	1, INT8OID);

/* parents of $1 that are not final, and those that failed or were cancelled */
static PQStatement stmt_count_parents_1_1 = PQ_STATEMENT(
	"SELECT count(*) FILTER (WHERE p.status IN ('todo', 'doing'))::int4,"
	" count(*) FILTER (WHERE p.status IN ('failed', 'cancelled'))::int4"
	" FROM procq.job_dependencies d"
	" JOIN procq.jobs p ON p.id = d.depends_on WHERE d.job_id = $1",
	1, INT8OID);

static PQStatement stmt_adjust_counts = PQ_STATEMENT(
	"UPDATE procq.jobs SET pending_parents = $2, failed_parents = $3"
	" WHERE id = $1 RETURNING queue, " PQ_READY_COND ","
	" status = 'todo' AND run_after = 'failure' AND pending_parents = 0"
	" AND failed_parents = 0",
	3, INT8OID, INT4OID, INT4OID);

static PQStatement stmt_adjust_pending = PQ_STATEMENT(
	"UPDATE procq.jobs SET pending_parents = $2 WHERE id = $1"
	" RETURNING queue, " PQ_READY_COND,
	2, INT8OID, INT4OID);

static PQStatement stmt_cancel_orphan = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'cancelled',"
	" finished_at = clock_timestamp(), cancelled_by = $2, error = $3,"
	" lock_blocked = false, delayed = false"
	" WHERE id = $1 AND status = 'todo' RETURNING lock",
	3, INT8OID, INT8OID, TEXTOID);

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
 * install script declares it, and returns its TriggerData.  The AFTER
 * triggers are AFTER ... FOR EACH STATEMENT with transition tables since
 * procq 1.1, and FOR EACH ROW in the definitions of procq 1.0, which this
 * library still serves until ALTER EXTENSION procq UPDATE.  The BEFORE
 * trigger is FOR EACH ROW.
 */
static TriggerData *
trigger_data(FunctionCallInfo fcinfo, const char *name, bool after)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	bool		ok;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ok = false;
	else if (after)
		ok = TRIGGER_FIRED_AFTER(trigdata->tg_event) &&
			(TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
			 (trigdata->tg_oldtable != NULL &&
			  (!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
			   trigdata->tg_newtable != NULL)));
	else
		ok = TRIGGER_FIRED_BEFORE(trigdata->tg_event) &&
			TRIGGER_FIRED_FOR_ROW(trigdata->tg_event);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be fired as %s", name,
						after ? "an AFTER ... FOR EACH STATEMENT trigger with transition tables"
						: "a BEFORE ... FOR EACH ROW trigger")));
	return trigdata;
}

/*
 * TransitionReader reads the rows of a transition table in the order the
 * statement stored them.
 */
typedef struct TransitionReader
{
	Tuplestorestate *store;
	int			readptr;
	TupleTableSlot *slot;
} TransitionReader;

/*
 * transition_open starts reading a transition table with a read pointer of
 * our own, so that other readers of the same table are not disturbed.
 */
static void
transition_open(TransitionReader *reader, Tuplestorestate *store, TupleDesc desc)
{
	reader->store = store;
	reader->readptr = tuplestore_alloc_read_pointer(store, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(store, reader->readptr);
	tuplestore_rescan(store);
	reader->slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
}

/*
 * transition_next reads the next row of a transition table into the
 * reader's slot (valid until the next call); false after the last.
 */
static bool
transition_next(TransitionReader *reader)
{
	tuplestore_select_read_pointer(reader->store, reader->readptr);
	return tuplestore_gettupleslot(reader->store, true, false, reader->slot);
}

/*
 * transition_tuple returns a copy of the row transition_next read, in the
 * current memory context.
 */
static HeapTuple
transition_tuple(TransitionReader *reader)
{
	bool		should_free;

	return ExecFetchSlotHeapTuple(reader->slot, false, &should_free);
}

/*
 * transition_close ends the reading of a transition table.
 */
static void
transition_close(TransitionReader *reader)
{
	ExecDropSingleTupleTableSlot(reader->slot);
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
 * normalize_requeue adds to changes what a failed or cancelled job put
 * back to todo gets: fresh attempts when it has none left, delayed when
 * it is scheduled for later, and a wait for its lock queue's hand-off.
 */
static void
normalize_requeue(ColumnChanges *changes, HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;
	int32		attempts = DatumGetInt32(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "attempts"), &isnull));
	int32		max_attempts = DatumGetInt32(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "max_attempts"), &isnull));
	Datum		scheduled_at = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "scheduled_at"), &isnull);

	if (attempts >= max_attempts)
		set_column(changes, tuple, desc, "attempts", Int32GetDatum(0), false);
	set_column(changes, tuple, desc, "delayed",
			   BoolGetDatum(!isnull && DatumGetTimestampTz(scheduled_at) > GetCurrentTimestamp()),
			   false);
	(void) SPI_getbinval(tuple, desc, SPI_fnumber(desc, "lock"), &isnull);
	set_column(changes, tuple, desc, "lock_blocked", BoolGetDatum(!isnull), false);
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
		normalize_requeue(&changes, tuple, desc);

	if (changes.n > 0)
		tuple = heap_modify_tuple_by_cols(tuple, desc, changes.n, changes.cols,
										  changes.values, changes.nulls);
	return PointerGetDatum(tuple);
}

/* A job whose status a statement changed, as the status trigger sees it. */
typedef struct StatusChange
{
	char	   *old_status;
	JobRow		new;
} StatusChange;

/*
 * check_status_change refuses a change of status that must not happen to
 * a job that has succeeded.
 */
static void
check_status_change(StatusChange *change)
{
	if (strcmp(change->old_status, "succeeded") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld has succeeded and cannot change status",
						(long long) change->new.id),
				 errdetail("Its children may already have run."),
				 errhint("Defer a new job to run the task again.")));
}

/*
 * ended_without_success says whether a status is failed or cancelled.
 */
static bool
ended_without_success(const char *status)
{
	return strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0;
}

/*
 * requeued_from_failure does what putting a failed or cancelled job back
 * to todo means: a 'success' job must not still have a failed or cancelled
 * parent (pq_job_failed_parent says none for the others), a 'failure' job
 * must have a parent that did not succeed, its children
 * count it as not final again, and the descendants cancelled through it
 * come back.
 */
static void
requeued_from_failure(int64 id)
{
	int64		parent;
	char	   *parent_status;

	if (pq_job_failed_parent(id, &parent, &parent_status))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld cannot go back to todo while its parent job %lld is %s",
						(long long) id, (long long) parent, parent_status),
				 errhint("Retry job %lld instead: that requeues its cancelled descendants too.",
						 (long long) parent)));
	if (pq_job_not_needed(id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld cannot go back to todo: all its parents succeeded", (long long) id),
				 errdetail("Its run_after is 'failure': it runs only after one of its parents ended without success.")));
	pq_revive_descendants(id);
}

/*
 * statuses_changed does what the changes of status of one statement (a
 * List of StatusChange, in the statement's order) mean for the other jobs,
 * with the same result as doing it for each job in turn:
 *
 *	- the children of all the jobs that succeeded are released in one
 *	  statement (releases only count down pending_parents, so they commute
 *	  with each other and with the cancellations);
 *	- a job that had failed or was cancelled and now succeeded (a DBA's
 *	  UPDATE) is first no longer counted as such by its children;
 *	- the descendants of each job that failed or was cancelled (and was
 *	  todo or doing before: from failed to cancelled changes nothing) are
 *	  cancelled, job by job in the statement's order, so that a descendant
 *	  of two of them is blamed on the first, as before; jobs without
 *	  children (most of them) are sorted out by one statement first;
 *	- a failed or cancelled job put back to todo revives its descendants;
 *	- each lock queue that one of the jobs is in moves along once, after
 *	  all of that (the hand-off only depends on the queue's final state).
 *
 * Called with SPI connected.
 */
static void
statuses_changed(List *changes)
{
	PQIdList	succeeded = {0};
	PQIdList	reopened = {0};
	PQIdList	ended = {0};
	PQIdList	with_children = {0};
	List	   *locks = NIL;
	int			next_with_children = 0;
	ListCell   *lc;

	foreach(lc, changes)
	{
		StatusChange *change = (StatusChange *) lfirst(lc);

		check_status_change(change);
		if (strcmp(change->new.status, "succeeded") == 0)
		{
			pq_idlist_add(&succeeded, change->new.id);
			if (ended_without_success(change->old_status))
				pq_idlist_add(&reopened, change->new.id);
		}
		else if (ended_without_success(change->new.status) &&
				 !ended_without_success(change->old_status))
			pq_idlist_add(&ended, change->new.id);
		if (change->new.lock != NULL)
			locks = lappend(locks, change->new.lock);
	}

	/* a DBA's failed -> succeeded: first forget the failure, then release */
	if (reopened.n > 0)
		pq_parents_reopened(&reopened);
	if (succeeded.n > 0)
		pq_release_children_of(&succeeded);
	if (ended.n > 0)
		with_children = pq_parents_with_children(&ended);

	foreach(lc, changes)
	{
		StatusChange *change = (StatusChange *) lfirst(lc);
		JobRow	   *new = &change->new;
		bool		failed = strcmp(new->status, "failed") == 0;

		if (ended_without_success(new->status) &&
			!ended_without_success(change->old_status))
		{
			/* with_children is in the order of ended, a subsequence */
			if (next_with_children < with_children.n &&
				with_children.ids[next_with_children] == new->id)
			{
				next_with_children++;
				pq_cancel_descendants(new->id, failed ? "failed" : "was cancelled",
									  psprintf("was cancelled (job %lld %s)",
											   (long long) new->id,
											   failed ? "failed" : "was cancelled"));
			}
		}
		else if (strcmp(new->status, "todo") == 0 &&
				 (strcmp(change->old_status, "failed") == 0 ||
				  strcmp(change->old_status, "cancelled") == 0))
			requeued_from_failure(new->id);
	}

	/* The hand-offs decide whether jobs with a lock may run now. */
	pq_refresh_locks(locks);

	foreach(lc, changes)
	{
		JobRow	   *new = &((StatusChange *) lfirst(lc))->new;
		PQJobInfo	info;

		if (new->lock != NULL)
		{
			if (strcmp(new->status, "todo") == 0 &&
				pq_job_lookup(new->id, &info) && info.ready)
				pq_notify_ready(new->queue);
		}
		else if (new->ready)
			pq_notify_ready(new->queue);
	}
}

/*
 * run_bookkeeping runs fn(arg1, arg2) with SPI connected, search_path
 * pinned (once for all the statements it runs) and the bookkeeping depth
 * raised, restoring the depth if an error escapes (a caller may catch the
 * error in a subtransaction and go on); the error's (sub)transaction abort
 * restores search_path.
 */
static void
run_bookkeeping(void (*fn) (void *, void *), void *arg1, void *arg2)
{
	volatile int gucnest = -1;

	if (strcmp(namespace_search_path, "pg_catalog, pg_temp") != 0)
	{
		gucnest = NewGUCNestLevel();
		(void) set_config_option("search_path", "pg_catalog, pg_temp",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	pq_connect();
	bookkeeping_depth++;
	PG_TRY();
	{
		fn(arg1, arg2);
	}
	PG_FINALLY();
	{
		bookkeeping_depth--;
	}
	PG_END_TRY();
	pq_finish();
	if (gucnest >= 0)
		AtEOXact_GUC(true, gucnest);
}

/*
 * statuses_changed_cb adapts statuses_changed to run_bookkeeping.
 */
static void
statuses_changed_cb(void *changes, void *unused)
{
	statuses_changed((List *) changes);
}

/*
 * final_counts_cb adapts pq_final_counts_flush to run_bookkeeping.
 */
static void
final_counts_cb(void *counts, void *unused)
{
	pq_final_counts_flush((PQFinalCounts *) counts, true);
}

/*
 * procq.jobs_status_changed(): AFTER UPDATE ON procq.jobs FOR EACH
 * STATEMENT, with the statement's old and new rows.
 *
 * Does the bookkeeping of the jobs whose status the statement changed to
 * anything but doing (taking a job needs none).  Does nothing for the
 * changes bookkeeping itself makes, but count them: the counts of final
 * jobs per queue (stats.c) follow every statement, the bookkeeping's own
 * (cascades) too.
 */
Datum
procq_jobs_status_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = trigger_data(fcinfo, "procq.jobs_status_changed", true);
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	int			status_att = SPI_fnumber(desc, "status");
	TransitionReader olds;
	TransitionReader news;
	List	   *changes = NIL;
	PQFinalCounts counts;

	if (TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		/* procq 1.0's row trigger: its WHEN clause chose the row */
		StatusChange *change;

		if (bookkeeping_depth > 0)
			return PointerGetDatum(NULL);
		change = palloc(sizeof(StatusChange));
		change->new = job_row_from(trigdata->tg_newtuple, desc);
		change->old_status = SPI_getvalue(trigdata->tg_trigtuple, desc, status_att);
		run_bookkeeping(statuses_changed_cb, list_make1(change), NULL);
		return PointerGetDatum(NULL);
	}

	pq_final_counts_start(&counts, desc);
	if (bookkeeping_depth > 0 && !counts.enabled)
		return PointerGetDatum(NULL);

	/* the old and the new table hold the rows in the same order */
	transition_open(&olds, trigdata->tg_oldtable, desc);
	transition_open(&news, trigdata->tg_newtable, desc);
	while (transition_next(&olds) && transition_next(&news))
	{
		bool		isnull;
		Datum		old_status;
		Datum		new_status;
		StatusChange *change;

		pq_final_counts_change(&counts, olds.slot, news.slot);
		if (bookkeeping_depth > 0)
			continue;
		old_status = slot_getattr(olds.slot, status_att, &isnull);
		new_status = slot_getattr(news.slot, status_att, &isnull);
		if (DatumGetObjectId(old_status) == DatumGetObjectId(new_status))
			continue;
		change = palloc(sizeof(StatusChange));
		change->new = job_row_from(transition_tuple(&news), desc);
		if (strcmp(change->new.status, "doing") == 0)
		{
			pfree(change);
			continue;
		}
		change->old_status = SPI_getvalue(transition_tuple(&olds), desc, status_att);
		changes = lappend(changes, change);
	}
	transition_close(&olds);
	transition_close(&news);

	if (pq_final_counts_pending(&counts))
		run_bookkeeping(final_counts_cb, &counts, NULL);
	if (changes != NIL)
		run_bookkeeping(statuses_changed_cb, changes, NULL);

	return PointerGetDatum(NULL);
}

/*
 * refresh_locks_cb adapts pq_refresh_locks to run_bookkeeping.
 */
static void
refresh_locks_cb(void *locks, void *unused)
{
	pq_refresh_locks((List *) locks);
}

/*
 * procq.jobs_deleted(): AFTER DELETE ON procq.jobs FOR EACH STATEMENT,
 * with the deleted rows: the lock queues of live jobs that were deleted
 * move along, each once, and the final jobs deleted are no longer counted
 * (stats.c).
 */
Datum
procq_jobs_deleted(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = trigger_data(fcinfo, "procq.jobs_deleted", true);
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	int			lock_att = SPI_fnumber(desc, "lock");
	int			status_att = SPI_fnumber(desc, "status");
	TransitionReader olds;
	List	   *locks = NIL;
	PQFinalCounts counts;

	if (TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		/* procq 1.0's row trigger: its WHEN clause chose the row */
		JobRow		old = job_row_from(trigdata->tg_trigtuple, desc);

		run_bookkeeping(refresh_locks_cb, list_make1(old.lock), NULL);
		return PointerGetDatum(NULL);
	}

	pq_final_counts_start(&counts, desc);
	transition_open(&olds, trigdata->tg_oldtable, desc);
	while (transition_next(&olds))
	{
		bool		isnull;
		char	   *status;

		pq_final_counts_change(&counts, olds.slot, NULL);
		(void) slot_getattr(olds.slot, lock_att, &isnull);
		if (isnull)
			continue;
		status = SPI_getvalue(transition_tuple(&olds), desc, status_att);
		if (strcmp(status, "todo") == 0 || strcmp(status, "doing") == 0)
			locks = lappend(locks, SPI_getvalue(transition_tuple(&olds), desc, lock_att));
	}
	transition_close(&olds);

	if (pq_final_counts_pending(&counts))
		run_bookkeeping(final_counts_cb, &counts, NULL);
	if (locks != NIL)
		run_bookkeeping(refresh_locks_cb, locks, NULL);

	return PointerGetDatum(NULL);
}

/*
 * set_pending sets a child's pending_parents and, with notify, notifies
 * its queue when that made it ready.
 */
static void
set_pending(int64 child, int32 pending, bool notify)
{
	Datum		v[2] = {Int64GetDatum(child), Int32GetDatum(pending)};
	bool		isnull;

	pq_exec(&stmt_adjust_pending, v, NULL, 1);
	if (notify && DatumGetBool(pq_get_attr(0, 2, &isnull)))
		pq_notify_ready(pq_get_text(0, 1));
}

/*
 * set_counts sets a child's pending_parents and failed_parents (procq
 * 1.1), and then, with judge, cancels it if it is a todo 'failure' job
 * whose parents all succeeded, or notifies its queue if it became ready.
 */
static void
set_counts(int64 child, int32 pending, int32 failed, bool judge)
{
	Datum		v[3] = {Int64GetDatum(child), Int32GetDatum(pending), Int32GetDatum(failed)};
	bool		isnull;

	pq_exec(&stmt_adjust_counts, v, NULL, 1);
	if (!judge)
		return;
	if (DatumGetBool(pq_get_attr(0, 3, &isnull)))
	{
		PQIdList	ids = {0};

		pq_idlist_add(&ids, child);
		pq_cancel_not_needed(&ids);
	}
	else if (DatumGetBool(pq_get_attr(0, 2, &isnull)))
		pq_notify_ready(pq_get_text(0, 1));
}

/*
 * cancel_orphan cancels a todo child whose parent was deleted before it
 * succeeded, and its descendants.
 */
static void
cancel_orphan(int64 child, int64 parent, PQJobInfo *info)
{
	Datum		v[3];
	const char *how = "was deleted before it succeeded";

	v[0] = Int64GetDatum(child);
	v[1] = Int64GetDatum(parent);
	v[2] = CStringGetTextDatum(psprintf("parent job %lld %s", (long long) parent, how));
	if (pq_exec(&stmt_cancel_orphan, v, NULL, 1) == 0)
		return;
	pq_cancel_descendants(child, psprintf("was cancelled (job %lld %s)", (long long) parent, how),
						  psprintf("was cancelled (job %lld %s)", (long long) parent, how));
	if (info->lock != NULL)
		pq_refresh_lock(info->lock);
}

/*
 * dependency_gone_1_1 is dependency_gone on procq 1.1's table, where the
 * child has a run_after and failed_parents (see the invariant in
 * cascade.c).  parent_status is the parent's status, or NULL when the
 * parent itself was deleted.  The child's row is locked.
 *
 * A DBA removed the dependency (the parent exists): the child waits for
 * one parent less, and forgets that parent's failure.  The parent was
 * deleted: if it had not ended (the live parents that are not final are
 * fewer than counted), it counts as ended without success: a 'success'
 * child that is todo is cancelled, the others count it as final and
 * failed.  A parent that had succeeded changes nothing; one that had
 * failed or was cancelled stays counted in failed_parents.
 */
static void
dependency_gone_1_1(int64 child, int64 parent, const char *parent_status,
					PQJobInfo *info)
{
	Datum		v[1] = {Int64GetDatum(child)};
	bool		isnull;
	char	   *child_status;
	int32		pending;
	int32		failed;
	bool		success;
	bool		todo;
	int64		blame;
	bool		blame_null;
	int32		live_open;
	int32		live_failed;

	if (pq_exec(&stmt_job_for_update_1_1, v, NULL, 1) == 0)
		return;
	child_status = pq_get_text(0, 1);
	todo = strcmp(child_status, "todo") == 0;
	pending = DatumGetInt32(pq_get_attr(0, 2, &isnull));
	success = strcmp(pq_get_text(0, 3), "success") == 0;
	failed = DatumGetInt32(pq_get_attr(0, 4, &isnull));
	blame = DatumGetInt64(pq_get_attr(0, 5, &blame_null));

	if (parent_status != NULL)
	{
		bool		parent_failed = strcmp(parent_status, "failed") == 0 ||
			strcmp(parent_status, "cancelled") == 0;
		bool		parent_open = strcmp(parent_status, "todo") == 0 ||
			strcmp(parent_status, "doing") == 0;

		if (parent_failed)
			failed--;
		if (parent_open || (success && parent_failed))
			pending--;
		if (parent_failed || parent_open)
			set_counts(child, pending, failed, true);
		return;
	}

	pq_exec(&stmt_count_parents_1_1, v, NULL, 1);
	live_open = DatumGetInt32(pq_get_attr(0, 1, &isnull));
	live_failed = DatumGetInt32(pq_get_attr(0, 2, &isnull));

	if (success)
	{
		int32		now_pending = live_open + live_failed;

		if (now_pending == pending)
			return;				/* the deleted parent had succeeded */

		/*
		 * It had not succeeded.  A todo child shows that it had not ended
		 * either (else the child would be cancelled); a child cancelled
		 * through it shows that it had; for any other child, failed_parents
		 * above the live failed parents cannot tell, and a parent that had
		 * not ended is assumed (a 'success' child that is not todo and not
		 * cancelled through it is final already: it never runs again
		 * without a retry, which recounts nothing of it).
		 */
		if (todo || blame_null || blame != parent)
			failed++;
		set_counts(child, now_pending, failed, false);
		if (todo)
			cancel_orphan(child, parent, info);
		return;
	}

	if (live_open == pending)
		return;					/* the deleted parent had ended */
	set_counts(child, live_open, failed + 1, todo);
	(void) live_failed;
}

/*
 * dependency_gone accounts for a deleted dependency row (child, parent).
 *
 * If the parent still exists, a DBA removed the dependency: the child
 * waits for one parent less.  If the parent was deleted, we learn whether
 * it had succeeded by recounting the child's unsucceeded parents: a
 * parent that had not succeeded was counted in pending_parents and is now
 * gone from the count.  Then the child, if it was waiting, is cancelled
 * with its descendants: a delete never releases a child.  (procq 1.1's
 * table: dependency_gone_1_1.)
 */
static void
dependency_gone(void *childp, void *parentp)
{
	int64		child = *(int64 *) childp;
	int64		parent = *(int64 *) parentp;
	Datum		v[3];
	bool		isnull;
	PQJobInfo	info;
	char	   *child_status;
	int32		pending;
	int32		now_pending;
	char	   *parent_status = NULL;

	if (!pq_job_lookup(child, &info))
		return;					/* the child itself was deleted */
	if (info.lock != NULL)
		pq_lock_key(info.lock);

	/*
	 * Lock the parent (if it still exists) before reading its status, as
	 * defer does: a parent succeeding right now is then seen succeeded, or
	 * sees the dependency gone; it cannot release the child a second time.
	 */
	if (pq_lock_jobs_for_share(pq_int8_array(&parent, 1)) == 1)
		parent_status = pq_get_text(0, 2);

	if (pq_schema_has_workflows())
	{
		dependency_gone_1_1(child, parent, parent_status, &info);
		return;
	}

	v[0] = Int64GetDatum(child);
	if (pq_exec(&stmt_job_for_update, v, NULL, 1) == 0)
		return;
	child_status = pq_get_text(0, 1);
	pending = DatumGetInt32(pq_get_attr(0, 2, &isnull));

	if (parent_status != NULL)
	{
		/* The parent still exists: only a dependency was removed. */
		if (strcmp(parent_status, "succeeded") != 0)
			set_pending(child, pending - 1, true);
		return;
	}

	if (pending == 0)
		return;					/* every parent had succeeded */
	pq_exec(&stmt_count_pending_parents, v, NULL, 1);
	now_pending = DatumGetInt32(pq_get_attr(0, 1, &isnull));
	if (now_pending == pending)
		return;					/* the deleted parent had succeeded */

	/* Keep the count exact; the child is cancelled below, not released. */
	set_pending(child, now_pending, false);
	if (strcmp(child_status, "todo") != 0)
		return;
	cancel_orphan(child, parent, &info);
}

/* A deleted dependency row. */
typedef struct Dependency
{
	int64		child;
	int64		parent;
} Dependency;

/*
 * dependencies_gone runs dependency_gone for each deleted dependency row
 * (a List of Dependency), in the statement's order.
 */
static void
dependencies_gone(void *deps, void *unused)
{
	ListCell   *lc;

	foreach(lc, (List *) deps)
	{
		Dependency *dep = (Dependency *) lfirst(lc);

		dependency_gone(&dep->child, &dep->parent);
	}
}

/*
 * procq.dependency_deleted(): AFTER DELETE ON procq.job_dependencies FOR
 * EACH STATEMENT, with the deleted rows.
 */
Datum
procq_dependency_deleted(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = trigger_data(fcinfo, "procq.dependency_deleted", true);
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	int			child_att = SPI_fnumber(desc, "job_id");
	int			parent_att = SPI_fnumber(desc, "depends_on");
	TransitionReader olds;
	List	   *deps = NIL;

	if (TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		/* procq 1.0's row trigger */
		Dependency *dep = palloc(sizeof(Dependency));
		bool		isnull;

		dep->child = DatumGetInt64(SPI_getbinval(trigdata->tg_trigtuple, desc,
												 child_att, &isnull));
		dep->parent = DatumGetInt64(SPI_getbinval(trigdata->tg_trigtuple, desc,
												  parent_att, &isnull));
		run_bookkeeping(dependencies_gone, list_make1(dep), NULL);
		return PointerGetDatum(NULL);
	}

	transition_open(&olds, trigdata->tg_oldtable, desc);
	while (transition_next(&olds))
	{
		Dependency *dep = palloc(sizeof(Dependency));
		bool		isnull;

		dep->child = DatumGetInt64(slot_getattr(olds.slot, child_att, &isnull));
		dep->parent = DatumGetInt64(slot_getattr(olds.slot, parent_att, &isnull));
		deps = lappend(deps, dep);
	}
	transition_close(&olds);

	if (deps != NIL)
		run_bookkeeping(dependencies_gone, deps, NULL);

	return PointerGetDatum(NULL);
}

/*
 * procq.jobs_workflow_default(): BEFORE INSERT ON procq.jobs FOR EACH ROW,
 * WHEN (NEW.workflow_id IS NULL).
 *
 * A job inserted without a workflow starts its own: its workflow_id is its
 * own id.  A column default cannot say so (it cannot read the row's id).
 */
Datum
procq_jobs_workflow_default(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = trigger_data(fcinfo, "procq.jobs_workflow_default", false);
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	HeapTuple	tuple = trigdata->tg_trigtuple;
	int			cols[1] = {SPI_fnumber(desc, "workflow_id")};
	Datum		values[1];
	bool		nulls[1] = {false};
	bool		isnull;

	if (!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || cols[0] <= 0)
		elog(ERROR, "procq.jobs_workflow_default must be a BEFORE INSERT trigger on procq.jobs");
	values[0] = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "id"), &isnull);
	if (isnull)
		return PointerGetDatum(tuple);	/* NOT NULL on id says what is wrong */
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 1, cols, values, nulls));
}
