/*-------------------------------------------------------------------------
 *
 * retention.c
 *	  Deleting old finished jobs: procq.purge(older_than) for manual use,
 *	  and the retention pass the first background worker makes when
 *	  procq.retention is set.
 *
 * The rule.  A job is deleted when it is finished (succeeded, failed or
 * cancelled), finished before the cutoff, and no job depends on it any
 * more: no row of procq.job_dependencies names it as depends_on.  Children
 * therefore go before their parents, and a parent goes only once all its
 * children are gone themselves (finished and old too).  A parent that
 * another job still names is kept whatever that job's state:
 *
 *	- a todo child that waits on another parent would run without this
 *	  parent's result (deleting a succeeded parent releases nothing and
 *	  cancels nothing; procq.parent_results would just lose it);
 *	- a doing child may fail and go back to todo for its next attempt, and
 *	  its handler may read procq.parent_results;
 *	- a failed or cancelled child may be put back by retry_job, and then
 *	  needs its parents exactly as before.
 *
 * So deleting never has consequences for other jobs: a job without
 * children cancels nobody and releases nobody when it goes (its own
 * dependency rows go with it, and the trigger on them finds the child,
 * that is the job itself, gone).
 *
 * Concurrency.  Each batch is two statements:
 *
 *	1. lock up to PQ_PURGE_BATCH candidates FOR UPDATE SKIP LOCKED, oldest
 *	   first;
 *	2. with a snapshot taken after those locks were granted, delete the
 *	   locked jobs that still qualify (finished, old, and no child).
 *
 * FOR UPDATE conflicts with the FOR SHARE lock that defer takes on a new
 * job's parents before it reads them (and with the FOR KEY SHARE lock of
 * the foreign key check on job_dependencies, for any other way of adding a
 * dependency), and with the FOR UPDATE / FOR NO KEY UPDATE locks of
 * retry_job and of the cascades.  So a job that someone is deferring a
 * child on, or retrying, right now is skipped (SKIP LOCKED: the purge
 * never waits on a busy job; it is taken by a later pass).  A defer or
 * retry that comes after the lock waits for the purge to commit and then
 * finds the job gone: depends_on on it fails with 23503, retry_job with
 * P0002.  And a defer that committed before the lock was granted is seen
 * by statement 2's snapshot, which is why the check that no child exists
 * cannot be made in statement 1 alone: its snapshot may predate a child
 * committed while it ran.
 *
 * Cost.  Statement 1 walks jobs_finished_idx (finished_at, over finished
 * jobs only) from the oldest end and stops after PQ_PURGE_BATCH jobs; the
 * "no child" check is one probe of job_dependencies_depends_on_idx per
 * job.
 *
 * Global state: the pacing of the worker's retention pass (retention_*
 * below), used only in the background worker that runs it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "guc.h"
#include "retention.h"
#include "shmem.h"
#include "spi_exec.h"
#include "worker_xact.h"

PG_FUNCTION_INFO_V1(procq_purge);

/* Most jobs deleted by one statement (and, in the workers, one transaction). */
#define PQ_PURGE_BATCH 1000

/* The worker's pause between two batches of one retention pass, in ms. */
#define PQ_RETENTION_PAUSE_MS 100

/* Longest time between two retention passes of the worker, in ms. */
#define PQ_RETENTION_INTERVAL_MS 60000

/* The statuses of finished jobs, as jobs_finished_idx names them. */
#define PQ_FINISHED_COND "status IN ('succeeded', 'failed', 'cancelled')"

/* No job names this one (alias j) as a parent. */
#define PQ_NO_CHILD_COND \
	"NOT EXISTS (SELECT 1 FROM procq.job_dependencies d WHERE d.depends_on = j.id)"

static PQStatement stmt_lock_candidates = PQ_STATEMENT(
	"WITH locked AS (SELECT j.id FROM procq.jobs j"
	"  WHERE j." PQ_FINISHED_COND " AND j.finished_at < $1"
	"  AND " PQ_NO_CHILD_COND
	"  ORDER BY j.finished_at LIMIT $2"
	"  FOR UPDATE OF j SKIP LOCKED)"
	" SELECT array_agg(id) FROM locked",
	2, TIMESTAMPTZOID, INT4OID);

static PQStatement stmt_delete_locked = PQ_STATEMENT(
	"DELETE FROM procq.jobs j WHERE j.id = ANY($1)"
	" AND j." PQ_FINISHED_COND " AND j.finished_at < $2"
	" AND " PQ_NO_CHILD_COND,
	2, INT8ARRAYOID, TIMESTAMPTZOID);

/*
 * The worker's retention pass: when the last one started, and whether one
 * is under way (its last batch deleted something, so another batch
 * follows).  An error during a batch ends the pass: the next one starts
 * after the interval.
 */
static TimestampTz retention_pass_started = 0;
static bool retention_in_pass = false;

/*
 * purge_batch deletes up to PQ_PURGE_BATCH jobs that finished before
 * cutoff and that no job depends on (see the file header), and returns
 * how many it deleted.  The caller has connected SPI.
 */
static int
purge_batch(TimestampTz cutoff)
{
	MemoryContext batchcxt;
	MemoryContext oldcxt;
	Datum		v[2];
	bool		isnull;
	Datum		locked;
	int			deleted = 0;

	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "procq purge batch",
									 ALLOCSET_SMALL_SIZES);

	v[0] = TimestampTzGetDatum(cutoff);
	v[1] = Int32GetDatum(PQ_PURGE_BATCH);
	pq_exec(&stmt_lock_candidates, v, NULL, 1);
	locked = pq_get_attr(0, 1, &isnull);
	if (!isnull)
	{
		/* The ids outlive the first statement's result, freed here. */
		oldcxt = MemoryContextSwitchTo(batchcxt);
		locked = PointerGetDatum(DatumGetArrayTypePCopy(locked));
		MemoryContextSwitchTo(oldcxt);
	}
	SPI_freetuptable(SPI_tuptable);

	if (!isnull)
	{
		v[0] = locked;
		v[1] = TimestampTzGetDatum(cutoff);
		deleted = pq_exec(&stmt_delete_locked, v, NULL, 0);
	}
	MemoryContextDelete(batchcxt);
	return deleted;
}

/*
 * check_may_purge raises an error unless the current user may delete from
 * procq.jobs: procq.purge deletes what a DBA's DELETE would (with the
 * rules above), and needs the same privilege, whoever was granted EXECUTE
 * on it.  The caller has connected SPI.
 */
static void
check_may_purge(void)
{
	Oid			relid = get_relname_relid("jobs", get_namespace_oid("procq", false));

	if (pg_class_aclcheck(relid, GetUserId(), ACL_DELETE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to purge procq jobs"),
				 errdetail("procq.purge deletes jobs: it needs the DELETE privilege on procq.jobs."),
				 errhint("Run it as the owner of procq.jobs, or grant DELETE on procq.jobs to role \"%s\".",
						 GetUserNameFromId(GetUserId(), false))));
}

/*
 * procq.purge(older_than interval) returns bigint
 *
 * Deletes the finished jobs that finished more than older_than before the
 * transaction started (now()) and that no job depends on, children before
 * their parents, in batches of PQ_PURGE_BATCH jobs per statement, until a
 * batch finds nothing more; returns how many it deleted.  All of it in the
 * caller's transaction.  Jobs that another transaction is deferring a
 * child on, retrying or otherwise changing right now are skipped.
 */
Datum
procq_purge(PG_FUNCTION_ARGS)
{
	Interval   *older_than;
	Interval	zero = {0};
	TimestampTz cutoff;
	int64		total = 0;
	int			deleted;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("older_than must not be null"),
				 errhint("Pass interval '0' to purge every finished job that no job depends on.")));
	older_than = PG_GETARG_INTERVAL_P(0);
	if (DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(older_than),
										 IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be negative"),
				 errdetail("older_than was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(older_than))))));
	cutoff = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
													 TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
													 IntervalPGetDatum(older_than)));

	pq_connect();
	check_may_purge();
	do
	{
		CHECK_FOR_INTERRUPTS();
		deleted = purge_batch(cutoff);
		total += deleted;
	} while (deleted > 0);
	pq_finish();

	PG_RETURN_INT64(total);
}

/*
 * pq_retention_step is the background workers' share of retention, called
 * once per turn of every worker's loop.  Only the worker of the first slot
 * does anything, and only when procq.retention is set: it starts a pass at
 * most every PQ_RETENTION_INTERVAL_MS (or every procq.retention, when
 * that is shorter), and a pass deletes one batch per call, in its own
 * transaction, jobs finished more than procq.retention ago (same rule as
 * procq.purge), until a batch deletes nothing.  Between two batches it
 * waits PQ_RETENTION_PAUSE_MS, cut short when its latch is set (a job
 * became ready, a signal): the worker's own jobs come first.
 *
 * Returns true when it deleted jobs and the pass goes on, so that the
 * caller comes back without sleeping for procq.poll_interval.
 */
bool
pq_retention_step(void)
{
	TimestampTz now;
	int			interval_ms;
	int			deleted;

	if (pq_my_slot != 0 || pq_retention <= 0)
	{
		retention_in_pass = false;
		return false;
	}

	/* The interval follows the current setting, also right after a reload. */
	now = GetCurrentTimestamp();
	interval_ms = Min((int64) pq_retention * 1000, PQ_RETENTION_INTERVAL_MS);
	if (!retention_in_pass)
	{
		if (!TimestampDifferenceExceeds(retention_pass_started, now, interval_ms))
			return false;
		retention_pass_started = now;
	}
	/* If the batch fails, the pass ends here (see retention_in_pass). */
	retention_in_pass = false;

	pq_begin_work("procq.retention: deleting old finished jobs");
	deleted = purge_batch(TimestampTzPlusMilliseconds(now, -(int64) pq_retention * 1000));
	pq_end_work();
	if (deleted > 0)
		elog(DEBUG1, "procq.retention: deleted %d finished jobs", deleted);

	retention_in_pass = deleted > 0;
	if (!retention_in_pass)
		return false;

	/*
	 * Pause before the next batch.  A wake-up that this reset consumes is
	 * not lost: the caller looks for jobs right after we return.
	 */
	ResetLatch(MyLatch);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 PQ_RETENTION_PAUSE_MS, PG_WAIT_EXTENSION);
	return true;
}
