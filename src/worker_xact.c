/*-------------------------------------------------------------------------
 *
 * worker_xact.c
 *	  The transactions of a background worker: started with a snapshot and
 *	  shown in pg_stat_activity, committed with the statistics reported;
 *	  and how long the worker's own statements wait for locks.
 *
 * Outside handlers a worker holds query cancels: only cancel_job may
 * cancel, and only a handler's statement.  Its own lock waits are bounded
 * all the same: lock_timeout is procq.worker_lock_timeout for the worker's
 * session (handlers get the server's lock_timeout back, see run_sql.c), and
 * the statements that may wait for a lock (recording outcomes, putting a
 * job back) run in a window where cancels are let through
 * (pq_lock_waits_begin); the worker's SIGINT handler cancels there only for
 * a timeout (shmem.c).  A lock timeout is then an ERROR with SQLSTATE
 * 55P03: the transaction rolls back and is tried again later, which counts
 * neither as a failure of its jobs nor as a death of the worker (worker.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "guc.h"

#include "spi_exec.h"
#include "worker_xact.h"

/*
 * pq_begin_xact starts a transaction with a snapshot, the way the worker
 * runs everything, and shows activity in pg_stat_activity.
 */
void
pq_begin_xact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/*
 * pq_end_xact commits what pq_begin_xact started.
 */
void
pq_end_xact(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

/*
 * pq_begin_work is pq_begin_xact with an SPI connection, refused unless
 * procq.jobs is the extension's table (pq_connect_worker).
 */
void
pq_begin_work(const char *activity)
{
	pq_begin_xact(activity);
	pq_connect_worker();
}

/*
 * pq_end_work commits what pq_begin_work started.
 */
void
pq_end_work(void)
{
	pq_finish();
	pq_end_xact();
}

/*
 * pq_set_worker_lock_timeout makes procq.worker_lock_timeout the lock_timeout
 * of the worker's session; called at start and after each reload, outside
 * any transaction.
 */
void
pq_set_worker_lock_timeout(void)
{
	char		value[32];

	snprintf(value, sizeof(value), "%d", pq_worker_lock_timeout);
	(void) set_config_option("lock_timeout", value, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, 0, false);
}

/*
 * pq_lock_waits_begin opens a window in which the worker's own statements
 * may be cancelled by a lock timeout (see the file header): a cancel left
 * pending from before (an abort request of a job that is settled by now)
 * is dropped, and cancels are let through.  pq_lock_waits_end closes it.
 * An ERROR inside the window leaves it closed too: every place that
 * catches the worker's errors holds cancels again.
 */
void
pq_lock_waits_begin(void)
{
	QueryCancelPending = false;
	RESUME_CANCEL_INTERRUPTS();
}

/*
 * pq_lock_waits_end closes the window pq_lock_waits_begin opened.
 */
void
pq_lock_waits_end(void)
{
	HOLD_CANCEL_INTERRUPTS();
}

/*
 * pq_is_lock_timeout says whether an error is a lock timeout of the
 * worker's own statements (55P03): not a failure of anything.
 */
bool
pq_is_lock_timeout(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

/*
 * pq_stopping_lock_timeout bounds the lock waits of the current
 * transaction of a worker that must stop (it puts back or finishes the
 * job it was running) to PQ_STOPPING_LOCK_TIMEOUT_MS, or less when
 * procq.worker_lock_timeout is less: the server must not wait for it.
 * Undone when the transaction ends.
 */
void
pq_stopping_lock_timeout(void)
{
	char		value[32];
	int			ms = PQ_STOPPING_LOCK_TIMEOUT_MS;

	if (pq_worker_lock_timeout > 0 && pq_worker_lock_timeout < ms)
		ms = pq_worker_lock_timeout;
	snprintf(value, sizeof(value), "%d", ms);
	(void) set_config_option("lock_timeout", value, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}
