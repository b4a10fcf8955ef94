/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The procq launcher: a static background worker (restarted by the
 *	  postmaster if it dies) that keeps procq.workers dynamic workers
 *	  (worker.c) running in procq.database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "guc.h"
#include "launcher.h"
#include "shmem.h"

/* Entry point named in BackgroundWorker.bgw_function_name */
PGDLLEXPORT void pq_launcher_main(Datum arg);

/*
 * pq_launcher_register registers the launcher with the postmaster; called
 * from _PG_init while preloading.
 */
void
pq_launcher_register(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 1;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "procq");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "pq_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "procq launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "procq launcher");
	RegisterBackgroundWorker(&bgw);
}

/*
 * start_worker registers the dynamic background worker for slot i.
 */
static bool
start_worker(int i)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "procq");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "pq_worker_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "procq worker %d", i + 1);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "procq worker");
	bgw.bgw_main_arg = Int32GetDatum(i);
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("procq could not start worker %d", i + 1),
				 errhint("Raise max_worker_processes.")));
		return false;
	}
	pfree(handle);
	return true;
}

/*
 * pq_launcher_main keeps procq.workers workers running: it starts a worker
 * for every free slot below procq.workers (after a delay that grows while
 * workers keep dying young, e.g. when procq.database lacks procq), and
 * stops the workers above it after a reload.  Woken by the postmaster
 * when one of its workers starts or stops, and every second.
 */
void
pq_launcher_main(Datum arg)
{
	TimestampTz next_start[PQ_MAX_WORKERS] = {0};
	int			delay_ms[PQ_MAX_WORKERS];

	for (int i = 0; i < PQ_MAX_WORKERS; i++)
		delay_ms[i] = 1000;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* No database: this only makes the launcher visible in pg_stat_activity. */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		for (int i = 0; i < PQ_MAX_WORKERS; i++)
		{
			pid_t		pid;
			TimestampTz started;

			pq_slot_read(i, &pid, &started);
			if (i >= pq_workers)
			{
				if (pid != 0)
					kill(pid, SIGTERM);
				continue;
			}
			if (pid != 0)
			{
				/* Running for a minute: the next restart may be quick. */
				if (TimestampDifferenceExceeds(started, now, 60000))
					delay_ms[i] = 1000;
				continue;
			}
			if (now < next_start[i])
				continue;
			if (start_worker(i))
			{
				next_start[i] = TimestampTzPlusMilliseconds(now, delay_ms[i]);
				delay_ms[i] = Min(delay_ms[i] * 2, 60000);
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
