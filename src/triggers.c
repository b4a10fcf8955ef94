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
 * Global state: bookkeeping_depth.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/timestamp.h"

#include "args.h"
#include "cascade.h"
#include "jobs.h"
#include "locks.h"
#include "notify.h"
#include "procq.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_jobs_status_changed);
PG_FUNCTION_INFO_V1(procq_jobs_status_normalize);
PG_FUNCTION_INFO_V1(procq_jobs_deleted);
PG_FUNCTION_INFO_V1(procq_dependency_deleted);

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
		pq_release_children(new->id);
	else if (strcmp(new->status, "failed") == 0)
		pq_cancel_descendants(new->id, "failed",
							  psprintf("was cancelled (job %lld failed)", (long long) new->id));
	else if (strcmp(new->status, "cancelled") == 0)
		pq_cancel_descendants(new->id, "was cancelled",
							  psprintf("was cancelled (job %lld was cancelled)", (long long) new->id));
	else if (strcmp(new->status, "todo") == 0 && from_final_failure)
	{
		int64		parent;
		char	   *parent_status;

		if (pq_job_failed_parent(new->id, &parent, &parent_status))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("job %lld cannot go back to todo while its parent job %lld is %s",
							(long long) new->id, (long long) parent, parent_status),
					 errhint("Retry job %lld instead: that requeues its cancelled descendants too.",
							 (long long) parent)));
		pq_revive_descendants(new->id);
	}

	if (new->lock != NULL)
	{
		/* The hand-off decides whether the job may run now. */
		PQJobInfo	info;

		pq_refresh_lock(new->lock);
		if (strcmp(new->status, "todo") == 0 &&
			pq_job_lookup(new->id, &info) && info.ready)
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

	if (bookkeeping_depth > 0)
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
	PQJobInfo	info;
	char	   *child_status;
	int32		pending;
	int32		now_pending;
	char	   *how;
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

	how = psprintf("was deleted before it succeeded");
	v[0] = Int64GetDatum(child);
	v[1] = Int64GetDatum(parent);
	v[2] = CStringGetTextDatum(psprintf("parent job %lld %s", (long long) parent, how));
	if (pq_exec(&stmt_cancel_orphan, v, NULL, 1) == 0)
		return;
	pq_cancel_descendants(child, psprintf("was cancelled (job %lld %s)", (long long) parent, how),
						  psprintf("was cancelled (job %lld %s)", (long long) parent, how));
	if (info.lock != NULL)
		pq_refresh_lock(info.lock);
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
