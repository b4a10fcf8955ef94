/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  One procq background worker's main loop.
 *
 * The launcher (launcher.c) starts one worker per slot below
 * procq.workers.  Each worker claims its slot (shmem.c), reads what the
 * slot's previous worker left running (crash.c), and loops:
 *
 *	- every 30 seconds, and at start, put back the shell jobs of workers
 *	  that died (orphans.c) and the jobs of external workers whose lease ran
 *	  out (lifecycle.c);
 *	- a batch of SQL jobs in one transaction (run_sql.c);
 *	- one shell job, when procq.enable_shell is on (run_shell.c);
 *	- then sleep on its latch until a transaction that made a job ready
 *	  commits (notify.c sets the latch), or procq.poll_interval passes.
 *
 * An error outside a job's subtransaction (a deadlock while recording a
 * batch's outcomes, a job that a DBA changed under us) is caught here: it
 * is reported, the transaction aborted and the loop goes on after a pause,
 * rather than exit and wait for the launcher.  The batch's jobs become
 * suspects and run alone next (crash.c, run_sql.c), so that a batch that
 * cannot commit does not run again forever.  A shell job in flight is
 * failed before more work is taken (run_shell.c).  A lock timeout of the
 * worker's own statements (procq.worker_lock_timeout, worker_xact.c) is
 * different: the batch is rolled back and runs again later as it was,
 * without counting against its jobs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "crash.h"
#include "guc.h"
#include "lifecycle.h"
#include "orphans.h"
#include "retention.h"
#include "run_shell.h"
#include "run_sql.h"
#include "shell.h"
#include "shmem.h"
#include "spi_exec.h"
#include "worker_xact.h"

/* Entry point named in BackgroundWorker.bgw_function_name (launcher.c) */
PGDLLEXPORT void pq_worker_main(Datum arg);

/* How often a worker recovers the jobs of dead or stalled workers, in ms. */
#define PQ_RECOVER_INTERVAL_MS 30000

/*
 * worker_quickdie is the worker's SIGQUIT handler: the postmaster sends it
 * when another process crashed, and the worker must exit at once, without
 * cleanup.  A shell job's process group is killed first (async-signal-safe)
 * so that it does not outlive the worker and run twice once the job is
 * recovered.  The batch in flight does not count as a death (crash.c).
 */
static void
worker_quickdie(SIGNAL_ARGS)
{
	pq_shell_kill_current();
	pq_crash_quickdie();
	_exit(2);
}

/*
 * worker_sigterm is the worker's SIGTERM handler: the usual die(), after
 * noting whether the postmaster (a shutdown or restart) or the launcher
 * (procq.workers lowered) sent it.  Then the job in flight was interrupted
 * cleanly (pq_clean_stop), which must not count as a worker death; a
 * SIGTERM from anyone else, a handler that terminates its own backend
 * say, still does.
 */
static void
worker_sigterm(int signo, siginfo_t *info, void *context)
{
	if (info != NULL &&
		(info->si_pid == PostmasterPid ||
		 (MyBgworkerEntry != NULL && info->si_pid == MyBgworkerEntry->bgw_notify_pid)))
		pq_clean_stop = true;
	die(signo);
}

/*
 * install_sigterm installs worker_sigterm, which needs the sender's pid
 * (SA_SIGINFO), hence sigaction rather than pqsignal.
 */
static void
install_sigterm(void)
{
	struct sigaction act;

	memset(&act, 0, sizeof(act));
	act.sa_sigaction = worker_sigterm;
	sigemptyset(&act.sa_mask);
	act.sa_flags = SA_SIGINFO | SA_RESTART;
	if (sigaction(SIGTERM, &act, NULL) < 0)
		elog(FATAL, "procq: could not install the SIGTERM handler: %m");
}

/*
 * release_slot frees the worker's slot when it exits, and kills its shell
 * job's process group if one is still running: the server never waits on
 * a job to shut down.  After a clean stop, the batch that was running is
 * not counted against its jobs (crash.c).
 */
static void
release_slot(int code, Datum arg)
{
	pq_shell_kill_current();
	if (pq_clean_stop)
		pq_crash_interrupted();
	pq_slot_release();
}

/*
 * procq_installed says whether procq is installed in the worker's
 * database (the extension, not merely a schema named procq: see
 * pq_installed); the worker waits for it otherwise.
 */
static bool
procq_installed(void)
{
	bool		installed;

	StartTransactionCommand();
	installed = pq_installed();
	CommitTransactionCommand();
	return installed;
}

/*
 * recover_jobs puts back the jobs of dead background workers and of
 * external workers whose lease ran out.
 */
static void
recover_jobs(void)
{
	pq_recover_orphans();
	pq_begin_work("recovering stalled jobs");
	pq_lock_waits_begin();
	(void) pq_recover_stalled_jobs();
	pq_lock_waits_end();
	pq_end_work();
}

/*
 * recover_from_error is where an error outside a job's subtransaction
 * lands (see the file header): it reports the error, aborts the
 * transaction, and pauses for a second.
 */
static void
recover_from_error(MemoryContext jobcxt)
{
	bool		lock_timeout;

	error_context_stack = NULL;
	HOLD_INTERRUPTS();
	disable_all_timeouts(false);
	QueryCancelPending = false;
	lock_timeout = pq_is_lock_timeout(geterrcode());
	EmitErrorReport();
	AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(TopMemoryContext);
	FlushErrorState();
	MemoryContextReset(jobcxt);
	/*
	 * A batch that failed as a whole must not run again as it was; one that
	 * only waited too long for a lock runs again as it was, uncounted.
	 */
	if (lock_timeout)
		pq_crash_interrupted();
	else
		pq_crash_batch_failed();
	QueryCancelHoldoffCount = 1;
	RESUME_INTERRUPTS();
	pq_slot_set_state(PQ_WORKER_IDLE, 0, NULL);
	(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
}

/*
 * start_worker sets up the worker process: signals, the database
 * connection, its slot (exiting when another worker holds it) and crash
 * accounting.
 */
static void
start_worker(int slot)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	install_sigterm();			/* SA_SIGINFO: a clean stop is no death */
	pqsignal(SIGINT, pq_slot_abort_signal);	/* cancel_job(abort), see shmem.c */
	pqsignal(SIGQUIT, worker_quickdie);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(pq_database, NULL, 0);

	if (!pq_slot_claim(slot))
		proc_exit(0);			/* another worker has this slot */
	before_shmem_exit(release_slot, (Datum) 0);
	pgstat_report_appname(psprintf("procq worker %d", slot + 1));
	pq_crash_open(slot);
	pq_set_worker_lock_timeout();
}

/*
 * pq_worker_main is a procq worker: it claims its slot, and runs jobs
 * until told to stop.
 */
void
pq_worker_main(Datum arg)
{
	sigjmp_buf	local_sigjmp_buf;
	MemoryContext jobcxt;
	volatile TimestampTz last_recover = 0;
	volatile bool installed_logged = false;

	start_worker(DatumGetInt32(arg));
	jobcxt = AllocSetContextCreate(TopMemoryContext, "procq job", ALLOCSET_DEFAULT_SIZES);

	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
		recover_from_error(jobcxt);
	PG_exception_stack = &local_sigjmp_buf;

	/* A cancel request only counts while a SQL handler runs. */
	if (QueryCancelHoldoffCount == 0)
		HOLD_CANCEL_INTERRUPTS();

	for (;;)
	{
		bool		worked = false;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			pq_set_worker_lock_timeout();
		}

		if (procq_installed())
		{
			if (TimestampDifferenceExceeds(last_recover, GetCurrentTimestamp(),
										   PQ_RECOVER_INTERVAL_MS))
			{
				recover_jobs();
				last_recover = GetCurrentTimestamp();
			}
			/* a shell job an error left in flight is failed first */
			pq_shell_finish_in_flight();
			worked = pq_run_sql_batch(jobcxt);
			if (pq_enable_shell)
				worked |= pq_run_shell_job(jobcxt);
			worked |= pq_retention_step();
			MemoryContextReset(jobcxt);
			installed_logged = false;
		}
		else
		{
			if (!installed_logged)
				ereport(LOG,
						(errmsg("procq worker %d waits: extension procq is not installed in database \"%s\"",
								pq_my_slot + 1, pq_database)));
			installed_logged = true;
		}

		if (worked)
			continue;
		pq_slot_set_state(PQ_WORKER_IDLE, 0, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pq_poll_interval, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
