/*-------------------------------------------------------------------------
 *
 * worker_xact.c
 *	  The transactions of a background worker: started with a snapshot and
 *	  shown in pg_stat_activity, committed with the statistics reported.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "pgstat.h"
#include "utils/snapmgr.h"

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
