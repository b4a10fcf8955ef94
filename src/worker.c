/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Background workers that run jobs inside the database, through the
 *	  handlers registered in procq.handlers.
 *
 * With shared_preload_libraries = 'procq', a launcher (a static background
 * worker, restarted by the postmaster if it dies) keeps procq.workers
 * dynamic workers running in procq.database.  Each worker loops:
 *
 *	- SQL jobs, up to procq.batch_size per transaction.  Each is fetched,
 *	  run in its own subtransaction as the role that deferred it, and
 *	  finished in the same transaction: a handler's effects and its job's
 *	  new status commit together, exactly once, and a failing handler rolls
 *	  back only its own effects.  A crash loses the whole uncommitted batch,
 *	  whose jobs are then still todo and run again.
 *	- One shell job.  It is fetched and committed as doing first, the
 *	  program runs outside any transaction (src/shell.c), and the outcome is
 *	  recorded in a second transaction.  A shell job whose worker died is
 *	  put back to todo (or failed) by the workers, which look for such jobs
 *	  when they start and every 30 seconds.
 *	- Then it sleeps on its latch until a transaction that made a job ready
 *	  commits (pq_request_wakeup sets every worker's latch from a commit
 *	  callback), or procq.poll_interval passes.
 *
 * Shared memory holds one slot per worker: its pid and latch, what it is
 * doing (procq.worker_status shows it), and an abort request that
 * procq.cancel_job(..., abort => true) leaves for it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "procq.h"
#include "shell.h"

PG_FUNCTION_INFO_V1(procq_register_handler);
PG_FUNCTION_INFO_V1(procq_unregister_handler);
PG_FUNCTION_INFO_V1(procq_worker_status);

/* Entry points named in BackgroundWorker.bgw_function_name */
PGDLLEXPORT void pq_launcher_main(Datum arg);
PGDLLEXPORT void pq_worker_main(Datum arg);

/* Most workers procq.workers may ask for. */
#define PQ_MAX_WORKERS 32

/* How often a worker calls procq.recover_stalled(), in milliseconds. */
#define PQ_RECOVER_INTERVAL_MS 30000

/* How long a shell job's process group gets between SIGTERM and SIGKILL. */
#define PQ_SHELL_KILL_GRACE_MS 5000

/*
 * How many times a worker may die while running the same SQL job before
 * the job is failed instead of run again (see note_running).
 */
#define PQ_POISON_LIMIT 3

/* Settings; see pq_worker_init for their documentation. */
static char *pq_database = NULL;
static int	pq_workers = 2;
static int	pq_batch_size = 10;
static int	pq_poll_interval = 1000;
static bool pq_enable_shell = false;
static int	pq_shell_output_limit = 1024;

/* What a worker slot says a worker is doing. */
typedef enum PQWorkerState
{
	PQ_WORKER_STARTING,
	PQ_WORKER_IDLE,
	PQ_WORKER_SQL,
	PQ_WORKER_SHELL
} PQWorkerState;

static const char *const pq_state_names[] = {"starting", "idle", "running sql", "running shell"};

/* One worker's slot in shared memory; pid 0 means free. */
typedef struct PQWorkerSlot
{
	pid_t		pid;
	Oid			dboid;			/* database the worker is connected to */
	Latch	   *latch;
	PQWorkerState state;
	int64		job_id;			/* job running now, or 0 */
	char		task[NAMEDATALEN];
	TimestampTz job_started_at;
	int64		jobs_done;
	TimestampTz started_at;
	int64		abort_job_id;	/* cancel_job(abort) asked to stop this job */
} PQWorkerSlot;

/* procq's shared memory. */
typedef struct PQShared
{
	slock_t		mutex;			/* protects everything below */
	PQWorkerSlot slots[PQ_MAX_WORKERS];
} PQShared;

/*
 * Pointer to procq's shared memory; NULL unless procq is in
 * shared_preload_libraries.
 */
static PQShared *pq_shared = NULL;

/* Set when this transaction made a job ready: wake the workers at commit. */
static bool pq_wakeup_pending = false;

/* In a worker process: its slot, and its name as stored in jobs.worker. */
static int	my_slot = -1;
static char *my_name = NULL;

/*
 * In a worker process: the file that names the SQL job it is running
 * (note_running), and what the file said when the worker started: the job
 * the slot's previous worker died running, and how many times in a row.
 */
static char *running_file = NULL;
static int64 suspect_job = 0;
static int	suspect_runs = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * pq_shmem_request asks the postmaster for procq's shared memory.
 */
static void
pq_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PQShared)));
}

/*
 * pq_shmem_startup finds or creates procq's shared memory; after a crash
 * the postmaster creates it anew, with every slot free.
 */
static void
pq_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pq_shared = ShmemInitStruct("procq", sizeof(PQShared), &found);
	if (!found)
	{
		memset(pq_shared, 0, sizeof(PQShared));
		SpinLockInit(&pq_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * pq_xact_callback wakes every worker when a transaction that made a job
 * ready has committed (the commit is visible by then), so that an idle
 * worker starts it at once instead of at its next poll.
 */
static void
pq_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (pq_wakeup_pending && pq_shared != NULL)
			{
				Latch	   *latches[PQ_MAX_WORKERS];
				int			n = 0;

				SpinLockAcquire(&pq_shared->mutex);
				for (int i = 0; i < PQ_MAX_WORKERS; i++)
					if (pq_shared->slots[i].pid != 0 && pq_shared->slots[i].latch &&
						pq_shared->slots[i].dboid == MyDatabaseId)
						latches[n++] = pq_shared->slots[i].latch;
				SpinLockRelease(&pq_shared->mutex);
				for (int i = 0; i < n; i++)
					SetLatch(latches[i]);
			}
			pq_wakeup_pending = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			pq_wakeup_pending = false;
			break;
		default:
			break;
	}
}

/*
 * pq_request_wakeup asks for the workers to be woken when the current
 * transaction commits.
 */
void
pq_request_wakeup(void)
{
	pq_wakeup_pending = true;
}

/*
 * pq_worker_init defines the worker settings and, when procq is being
 * preloaded, asks for shared memory and registers the launcher.  Called
 * from _PG_init.
 */
void
pq_worker_init(void)
{
	BackgroundWorker bgw;

	DefineCustomIntVariable("procq.workers",
							"Number of procq background workers.",
							"Each is a background worker: max_worker_processes must leave room "
							"for them and the launcher. 0 stops them. Reloadable.",
							&pq_workers, 2, 0, PQ_MAX_WORKERS,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("procq.batch_size",
							"Most SQL jobs a worker runs in one transaction.",
							"Each job runs in its own subtransaction; the commit is shared. Reloadable.",
							&pq_batch_size, 10, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("procq.poll_interval",
							"How long an idle worker sleeps before looking for jobs again.",
							"Workers are woken at once when a job becomes ready; this is the "
							"safety net, and the pace for jobs scheduled for later. Reloadable.",
							&pq_poll_interval, 1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("procq.enable_shell",
							 "Whether the workers run jobs of shell handlers.",
							 "Off by default. Reloadable.",
							 &pq_enable_shell, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("procq.shell_output_limit",
							"Most standard output of a shell job kept as its result.",
							"Output beyond it is read and discarded. Reloadable.",
							&pq_shell_output_limit, 1024, 1, 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);

	RegisterXactCallback(pq_xact_callback, NULL);

	/* The rest only makes sense, and is only allowed, while preloading. */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomStringVariable("procq.database",
							   "Database in which the procq background workers run jobs.",
							   "procq must be installed there. Needs a restart.",
							   &pq_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pq_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pq_shmem_startup;

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

			SpinLockAcquire(&pq_shared->mutex);
			pid = pq_shared->slots[i].pid;
			started = pq_shared->slots[i].started_at;
			SpinLockRelease(&pq_shared->mutex);

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

/*
 * worker_quickdie is the worker's SIGQUIT handler: the postmaster sends it
 * when another process crashed, and the worker must exit at once, without
 * cleanup.  A shell job's process group is killed first (async-signal-safe)
 * so that it does not outlive the worker and run twice once the job is
 * recovered.
 */
static void
worker_quickdie(SIGNAL_ARGS)
{
	pq_shell_kill_current();
	_exit(2);
}

/*
 * release_slot frees a worker's slot when it exits, and kills its shell
 * job's process group if one is still running: the server never waits on
 * a job to shut down.
 */
static void
release_slot(int code, Datum arg)
{
	pq_shell_kill_current();
	SpinLockAcquire(&pq_shared->mutex);
	memset(&pq_shared->slots[my_slot], 0, sizeof(PQWorkerSlot));
	SpinLockRelease(&pq_shared->mutex);
}

/*
 * set_state records in the worker's slot what it is doing, and shows it in
 * pg_stat_activity ("job 123 (send_email)").
 */
static void
set_state(PQWorkerState state, int64 job_id, const char *task)
{
	PQWorkerSlot *slot = &pq_shared->slots[my_slot];

	SpinLockAcquire(&pq_shared->mutex);
	slot->state = state;
	slot->job_id = job_id;
	strlcpy(slot->task, task ? task : "", NAMEDATALEN);
	slot->job_started_at = job_id ? GetCurrentTimestamp() : 0;
	/* An abort request is for the job that was running, not a later run. */
	slot->abort_job_id = 0;
	SpinLockRelease(&pq_shared->mutex);

	if (job_id != 0)
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("job %lld (%s)", (long long) job_id, task));
	else
		pgstat_report_activity(STATE_IDLE, "waiting for jobs");
}

/*
 * job_done counts a finished job in the worker's slot.
 */
static void
job_done(void)
{
	SpinLockAcquire(&pq_shared->mutex);
	pq_shared->slots[my_slot].jobs_done++;
	pq_shared->slots[my_slot].job_id = 0;
	SpinLockRelease(&pq_shared->mutex);
}

/*
 * abort_requested says whether procq.cancel_job(job_id, abort => true) asked
 * this worker to stop the job.
 */
static bool
abort_requested(int64 job_id)
{
	bool		requested;

	SpinLockAcquire(&pq_shared->mutex);
	requested = pq_shared->slots[my_slot].abort_job_id == job_id;
	SpinLockRelease(&pq_shared->mutex);
	return requested;
}

/*
 * pq_abort_running_job asks the background worker running job_id, if
 * any, to stop it: a SQL job's statement is cancelled (SIGINT), a shell
 * job's process group killed.  The worker then finishes the job as
 * cancelled.  Returns false when no worker runs the job.
 */
bool
pq_abort_running_job(int64 job_id)
{
	pid_t		pid = 0;
	PQWorkerState state = PQ_WORKER_IDLE;
	Latch	   *latch = NULL;

	if (pq_shared == NULL)
		return false;

	SpinLockAcquire(&pq_shared->mutex);
	for (int i = 0; i < PQ_MAX_WORKERS; i++)
	{
		PQWorkerSlot *slot = &pq_shared->slots[i];

		if (slot->pid != 0 && slot->dboid == MyDatabaseId && slot->job_id == job_id)
		{
			slot->abort_job_id = job_id;
			pid = slot->pid;
			state = slot->state;
			latch = slot->latch;
			break;
		}
	}
	SpinLockRelease(&pq_shared->mutex);

	if (latch)
		SetLatch(latch);
	if (pid != 0 && state == PQ_WORKER_SQL)
		kill(pid, SIGINT);
	return pid != 0;
}

/*
 * pq_worker_runs_job says whether a background worker is running job_id
 * right now.
 */
bool
pq_worker_runs_job(int64 job_id)
{
	bool		running = false;

	if (pq_shared == NULL)
		return false;
	SpinLockAcquire(&pq_shared->mutex);
	for (int i = 0; i < PQ_MAX_WORKERS; i++)
		if (pq_shared->slots[i].pid != 0 &&
			pq_shared->slots[i].dboid == MyDatabaseId &&
			pq_shared->slots[i].job_id == job_id)
			running = true;
	SpinLockRelease(&pq_shared->mutex);
	return running;
}

/*
 * procq_installed says whether procq is installed in the worker's
 * database; the worker waits for it otherwise.
 */
static bool
procq_installed(void)
{
	return OidIsValid(get_namespace_oid("procq", true));
}

/*
 * begin_xact starts a transaction with a snapshot, the way the worker runs
 * everything.
 */
static void
begin_xact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/*
 * end_xact commits what begin_xact started.
 */
static void
end_xact(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

/*
 * begin_work is begin_xact with an SPI connection.
 */
static void
begin_work(const char *activity)
{
	begin_xact(activity);
	pq_connect();
}

/*
 * end_work commits what begin_work started.
 */
static void
end_work(void)
{
	pq_finish();
	end_xact();
}

/*
 * finish_job records a job's outcome through procq.finish_job, which also
 * schedules a retry when a failed job has attempts left.
 */
static void
finish_job(int64 job_id, const char *status, Datum result, bool result_null,
		   const char *error)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', result_null ? 'n' : ' ', error ? ' ' : 'n'};

	values[0] = Int64GetDatum(job_id);
	values[1] = CStringGetTextDatum(status);
	values[2] = result;
	values[3] = error ? CStringGetTextDatum(error) : (Datum) 0;
	(void) pq_exec(PQ_WORKER_FINISH, values, nulls, 1);
}

/*
 * error_text renders an error for procq.jobs.error: message, SQLSTATE,
 * detail, hint and context.
 */
static char *
error_text(ErrorData *edata)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s (SQLSTATE %s)", edata->message,
					 unpack_sql_state(edata->sqlerrcode));
	if (edata->detail)
		appendStringInfo(&buf, "\nDETAIL: %s", edata->detail);
	if (edata->hint)
		appendStringInfo(&buf, "\nHINT: %s", edata->hint);
	if (edata->context)
		appendStringInfo(&buf, "\nCONTEXT: %s", edata->context);
	return buf.data;
}

/*
 * open_running_file finds this slot's running-job file (creating its
 * directory) and reads what the slot's previous worker left in it.
 */
static void
open_running_file(void)
{
	char	   *dir = psprintf("%s/pg_procq", DataDir);
	FILE	   *f;
	long long	job;
	int			runs;

	if (MakePGDirectory(dir) < 0 && errno != EEXIST)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", dir)));
	running_file = MemoryContextStrdup(TopMemoryContext,
									   psprintf("%s/worker_%d", dir, my_slot + 1));
	f = AllocateFile(running_file, "r");
	if (f != NULL)
	{
		if (fscanf(f, "%lld %d", &job, &runs) == 2)
		{
			suspect_job = job;
			suspect_runs = runs;
		}
		FreeFile(f);
	}
}

/*
 * note_running writes down, outside any transaction, that the worker is
 * about to run SQL job job_id, and for the how-many-th time in a row.  If
 * the worker dies (a handler that crashes or terminates its backend), its
 * uncommitted batch is rolled back and the job would run again and again:
 * the next worker in the slot reads the file, and once the job killed
 * PQ_POISON_LIMIT workers it is failed instead.  Returns that count.
 */
static int
note_running(int64 job_id)
{
	int			runs = (job_id == suspect_job) ? suspect_runs + 1 : 1;
	FILE	   *f = AllocateFile(running_file, "w");

	if (f == NULL || fprintf(f, "%lld %d\n", (long long) job_id, runs) < 0 ||
		FreeFile(f) != 0)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", running_file)));
	/* Until the batch commits, a retry in this process counts on. */
	suspect_job = job_id;
	suspect_runs = runs;
	return runs;
}

/*
 * clear_running forgets the running job once its batch has committed.
 */
static void
clear_running(void)
{
	if (unlink(running_file) < 0 && errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", running_file)));
	suspect_job = 0;
	suspect_runs = 0;
}

/* A job as the worker fetched it. */
typedef struct FetchedJob
{
	int64		id;
	char	   *task;
	Datum		args;			/* jsonb */
	Oid			deferred_by;
	char	   *command;
	int64		timeout_ms;		/* 0: none */
	Oid			registered_by;
} FetchedJob;

/*
 * fetch_handled_job takes the best ready job whose task has a handler of
 * the given kind, with that handler.  Returns false when there is none.
 * Everything returned lives in cxt.
 *
 * It looks at the handled tasks one by one, best ready job first, in the
 * per-task ready index: ready jobs of tasks without a handler (left for
 * external workers) cost nothing, however many there are.  Within a task,
 * jobs other workers are taking are skipped.
 */
static bool
fetch_handled_job(const char *kind, int lease_seconds, FetchedJob *job,
				  MemoryContext cxt)
{
	Datum		v[3];
	bool		isnull;
	MemoryContext old;
	int			ntasks;
	char	  **tasks;
	bool		found = false;

	v[0] = CStringGetTextDatum(kind);
	ntasks = pq_exec(PQ_HANDLED_TASKS, v, NULL, 0);
	tasks = palloc(sizeof(char *) * Max(ntasks, 1));
	for (int i = 0; i < ntasks; i++)
		tasks[i] = pq_get_text(i, 1);

	v[0] = CStringGetTextDatum(my_name);
	v[1] = Int32GetDatum(lease_seconds);
	for (int i = 0; i < ntasks && !found; i++)
	{
		v[2] = CStringGetTextDatum(tasks[i]);
		found = pq_exec(PQ_FETCH_HANDLED, v, NULL, 1) == 1;
	}
	if (!found)
		return false;

	old = MemoryContextSwitchTo(cxt);
	job->id = DatumGetInt64(pq_get_attr(0, 1, &isnull));
	job->task = pq_get_text(0, 2);
	job->args = datumCopy(pq_get_attr(0, 3, &isnull), false, -1);
	job->deferred_by = DatumGetObjectId(pq_get_attr(0, 4, &isnull));
	job->command = pq_get_text(0, 5);
	job->timeout_ms = DatumGetInt64(pq_get_attr(0, 6, &isnull));
	if (isnull)
		job->timeout_ms = 0;
	job->registered_by = DatumGetObjectId(pq_get_attr(0, 7, &isnull));
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * run_sql_handler runs one SQL job in its own subtransaction, as the role
 * that deferred it (with security restrictions: it cannot switch roles),
 * with the handler's timeout as statement timeout, and with any setting it
 * changes undone afterwards, and finishes it there as succeeded, with the
 * first column of the first row as result.  If anything fails, the
 * subtransaction is rolled back and the job is finished in the enclosing
 * transaction as failed (retried if attempts are left), or as cancelled
 * when it was aborted.
 */
static void
run_sql_handler(FetchedJob *job, MemoryContext jobcxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Oid			save_userid;
	int			save_sec_context;
	volatile Datum result = (Datum) 0;
	volatile bool result_null = true;
	char	   *volatile error = NULL;
	volatile bool aborted = false;

	set_state(PQ_WORKER_SQL, job->id, job->task);

	if (job->id == suspect_job && suspect_runs >= PQ_POISON_LIMIT)
	{
		/* Failed for good: a retry would only kill more workers. */
		Datum		v[2];

		v[0] = Int64GetDatum(job->id);
		v[1] = CStringGetTextDatum(psprintf("not run again: its procq worker died %d times while running it",
											suspect_runs));
		(void) pq_exec(PQ_FAIL_FOR_GOOD, v, NULL, 0);
		job_done();
		return;
	}
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job->deferred_by)))
		error = psprintf("the role that deferred job %lld no longer exists",
						 (long long) job->id);
	else if (!has_privs_of_role(job->registered_by, job->deferred_by))
		error = psprintf("the handler of task \"%s\" was registered by role %s, "
						 "which may not act as role %s that deferred the job",
						 job->task, GetUserNameFromId(job->registered_by, true),
						 GetUserNameFromId(job->deferred_by, true));
	if (error != NULL)
	{
		finish_job(job->id, "failed", (Datum) 0, true, error);
		job_done();
		return;
	}

	(void) note_running(job->id);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);

	/* Only an abort of this job may cancel what follows. */
	if (!abort_requested(job->id))
		QueryCancelPending = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);

	PG_TRY();
	{
		int			gucnest = NewGUCNestLevel();
		Oid			argtypes[2] = {JSONBOID, INT8OID};
		Datum		values[2] = {job->args, Int64GetDatum(job->id)};
		int			ret;

		SetUserIdAndSecContext(job->deferred_by,
							   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		if (job->timeout_ms > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, (int) Min(job->timeout_ms, INT_MAX));
		RESUME_CANCEL_INTERRUPTS();

		ret = SPI_execute_with_args(job->command, 2, argtypes, values, NULL, false, 0);
		if (ret < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("handler statement could not run: %s",
							SPI_result_code_string(ret))));

		/* First column of the first row, as jsonb. */
		if (SPI_tuptable != NULL && SPI_processed > 0 && SPI_tuptable->tupdesc->natts > 0)
		{
			bool		isnull;
			Oid			type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
			Datum		first = SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull);

			/* void and other pseudo-types have no value to keep */
			if (get_typtype(type) == TYPTYPE_PSEUDO)
				isnull = true;
			if (!isnull && type != JSONBOID)
			{
				ret = SPI_execute_with_args("SELECT pg_catalog.to_jsonb($1)", 1, &type,
											&first, NULL, true, 1);
				if (ret != SPI_OK_SELECT)
					elog(ERROR, "procq: could not convert the handler's result to jsonb");
				first = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			}
			if (!isnull)
			{
				MemoryContext old = MemoryContextSwitchTo(jobcxt);

				result = datumCopy(first, false, -1);
				result_null = false;
				MemoryContextSwitchTo(old);
			}
		}

		HOLD_CANCEL_INTERRUPTS();
		disable_timeout(STATEMENT_TIMEOUT, false);
		SetUserIdAndSecContext(save_userid, save_sec_context);
		AtEOXact_GUC(false, gucnest);

		/*
		 * Finishing belongs to the job's subtransaction: if it fails (say
		 * the handler finished or deleted its own job), the job's effects
		 * are rolled back with it and the job is failed below, instead of
		 * the error killing the whole batch again and again.
		 */
		finish_job(job->id, "succeeded", result, result_null, NULL);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		QueryCancelHoldoffCount = 0;
		HOLD_CANCEL_INTERRUPTS();
		disable_timeout(STATEMENT_TIMEOUT, false);

		MemoryContextSwitchTo(jobcxt);
		edata = CopyErrorData();
		FlushErrorState();

		/* Undoes the effects, the settings and the role switch. */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;

		aborted = abort_requested(job->id);
		error = aborted ? "aborted by procq.cancel_job" : error_text(edata);
		result_null = true;
	}
	PG_END_TRY();

	QueryCancelPending = false;
	if (error != NULL)
		finish_job(job->id, aborted ? "cancelled" : "failed", (Datum) 0, true, error);
	job_done();
}

/*
 * run_sql_batch runs up to procq.batch_size SQL jobs in one transaction.
 * Returns whether it found any.
 */
static bool
run_sql_batch(MemoryContext jobcxt)
{
	int			done = 0;

	/*
	 * Due scheduled jobs become fetchable in a transaction of their own:
	 * their rows must not stay locked for the length of a batch.
	 */
	begin_work("promoting due jobs");
	(void) pq_exec(PQ_PROMOTE_DUE, NULL, NULL, 0);
	end_work();
	MemoryContextSwitchTo(jobcxt);

	begin_xact("fetching SQL jobs");
	for (; done < pq_batch_size; done++)
	{
		FetchedJob	job;
		bool		found;

		/* An SPI connection per job, so that a batch's memory stays flat. */
		MemoryContextReset(jobcxt);
		pq_connect();
		found = fetch_handled_job("sql", pq_lease_duration, &job, jobcxt);
		if (found)
			run_sql_handler(&job, jobcxt);
		pq_finish();
		if (!found)
			break;
	}
	end_xact();
	if (done > 0)
		clear_running();
	MemoryContextReset(jobcxt);
	return done > 0;
}

/*
 * shell_should_stop tells pq_shell_run to kill the job's process group:
 * the server is shutting the worker down, the postmaster died, or
 * cancel_job asked to abort the job.
 */
static bool
shell_should_stop(void *arg)
{
	int64		job_id = *(int64 *) arg;

	return ProcDiePending || !PostmasterIsAlive() || abort_requested(job_id);
}

/*
 * json_string makes a jsonb string of len bytes of text.
 */
static Datum
json_string(char *text, int len)
{
	JsonbValue	jbv;

	jbv.type = jbvString;
	jbv.val.string.val = text;
	jbv.val.string.len = len;
	return JsonbPGetDatum(JsonbValueToJsonb(&jbv));
}

/*
 * json_to_jsonb converts JSON text to jsonb, in a subtransaction: valid
 * JSON that jsonb still refuses ("\u0000", a number out of range) must not
 * cost the worker its life.  Returns false (and nothing) then.
 */
static bool
json_to_jsonb(char *json, Datum *result)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		*result = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return ok;
}

/*
 * valid_text makes len bytes of a program's output fit for a text column:
 * NUL bytes and bytes that are not valid in the database encoding (for
 * instance a character cut in two at the start of stderr's tail) become
 * '?'.
 */
static char *
valid_text(const char *bytes, size_t len)
{
	char	   *text = palloc(len + 1);
	int			encoding = GetDatabaseEncoding();
	size_t		i = 0;

	while (i < len)
	{
		int			clen = pg_encoding_mblen(encoding, bytes + i);

		if (bytes[i] != '\0' && i + clen <= len &&
			pg_encoding_verifymbchar(encoding, bytes + i, clen) == clen)
		{
			memcpy(text + i, bytes + i, clen);
			i += clen;
		}
		else
			text[i++] = '?';
	}
	text[len] = '\0';
	return text;
}

/*
 * shell_result makes the jobs.result of a shell job from its stdout: the
 * JSON it printed, or else its text as a JSON string (without one trailing
 * newline); NULL when it printed nothing.
 */
static bool
shell_result(PQShellResult *res, Datum *result)
{
	JsonLexContext *lex;
	size_t		len = res->out_len;

	if (len == 0)
		return false;
	if (memchr(res->out, '\0', len) == NULL &&
		pg_verify_mbstr(GetDatabaseEncoding(), res->out, len, true))
	{
		lex = makeJsonLexContextCstringLen(res->out, len, GetDatabaseEncoding(), false);
		if (!res->stdout_truncated && pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS &&
			json_to_jsonb(res->out, result))
			return true;
		if (res->out[len - 1] == '\n')
			len--;
		*result = json_string(res->out, len);
		return true;
	}
	*result = json_string("(binary output)", strlen("(binary output)"));
	return true;
}

/*
 * run_shell_job fetches one shell job and commits it as doing, runs its
 * program outside any transaction, and records the outcome.  Returns
 * whether there was one.
 */
static bool
run_shell_job(MemoryContext jobcxt)
{
	FetchedJob	job;
	char	  **argv;
	char		errbuf[256];
	char	   *env[4];
	char	   *args_text;
	PQShellResult res;
	int			lease;
	const char *status;
	char	   *error = NULL;
	Datum		result = (Datum) 0;
	bool		has_result = false;
	MemoryContext old;

	/*
	 * The lease outlives any timeout: the workers recover the jobs of a dead
	 * worker themselves (recover_orphans).
	 */
	begin_work("fetching a shell job");
	lease = 10 * 365 * 86400;
	if (!fetch_handled_job("shell", lease, &job, jobcxt))
	{
		end_work();
		return false;
	}
	end_work();

	/* Everything until the next transaction lives in jobcxt. */
	MemoryContextSwitchTo(jobcxt);
	set_state(PQ_WORKER_SHELL, job.id, job.task);
	args_text = JsonbToCString(NULL, &DatumGetJsonbP(job.args)->root, VARSIZE(DatumGetPointer(job.args)));
	env[0] = psprintf("PROCQ_JOB_ID=%lld", (long long) job.id);
	env[1] = psprintf("PROCQ_TASK=%s", job.task);
	env[2] = psprintf("PROCQ_ARGS=%s", args_text);
	env[3] = NULL;

	argv = pq_shell_split(job.command, errbuf, sizeof(errbuf));
	if (argv == NULL)
	{
		memset(&res, 0, sizeof(res));
		res.exit_code = -1;
		snprintf(res.start_error, sizeof(res.start_error), "invalid command: %s", errbuf);
	}
	else
	{
		pq_shell_run(argv, env, args_text, strlen(args_text),
					 (int) Min(job.timeout_ms, INT_MAX), PQ_SHELL_KILL_GRACE_MS,
					 (size_t) pq_shell_output_limit * 1024,
					 shell_should_stop, &job.id, &res);
		free(argv);
	}

	/* Shutting down: the next worker in this slot recovers the job. */
	CHECK_FOR_INTERRUPTS();

	if (res.aborted && abort_requested(job.id))
	{
		status = "cancelled";
		error = "aborted by procq.cancel_job";
	}
	else if (res.start_error[0] != '\0')
	{
		status = "failed";
		error = pstrdup(res.start_error);
	}
	else if (res.timed_out || res.exit_code != 0)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		if (res.timed_out)
			appendStringInfo(&buf, "timed out after %lld ms", (long long) job.timeout_ms);
		else if (res.term_signal != 0)
			appendStringInfo(&buf, "killed by signal %d", res.term_signal);
		else
			appendStringInfo(&buf, "exit status %d", res.exit_code);
		if (res.err_len > 0)
			appendStringInfo(&buf, "\nstderr:\n%s", valid_text(res.err_tail, res.err_len));
		status = "failed";
		error = buf.data;
	}
	else
	{
		status = "succeeded";
		if (res.stdout_truncated)
			error = psprintf("stdout was cut at %d kB (procq.shell_output_limit)",
							 pq_shell_output_limit);
	}

	begin_work("finishing a shell job");
	old = MemoryContextSwitchTo(jobcxt);
	if (strcmp(status, "succeeded") == 0)
		has_result = shell_result(&res, &result);
	pq_shell_result_free(&res);
	MemoryContextSwitchTo(old);
	finish_job(job.id, status, result, !has_result, error);
	end_work();
	job_done();
	return true;
}

/*
 * recover_orphans puts back the shell jobs whose procq worker died while
 * running them (they were committed as doing, by a worker that no longer
 * holds its slot): to todo with the attempt counted, or to failed when
 * none is left.  Jobs whose lock queues are busy are left for next time.
 *
 * The live workers are read after the jobs: a worker that started since
 * cannot have fetched a job we see.  And a job is only put back if it
 * still names the dead worker, so a job that a live worker fetched again
 * meanwhile is left alone.
 */
static void
recover_orphans(void)
{
	pid_t		live[PQ_MAX_WORKERS];
	int			n;
	int			recovered = 0;
	int64	   *ids;
	char	  **locks;
	char	  **qlocks;
	char	  **names;

	begin_work("recovering jobs of dead workers");
	n = pq_exec(PQ_ORPHANS, NULL, NULL, 0);

	SpinLockAcquire(&pq_shared->mutex);
	for (int i = 0; i < PQ_MAX_WORKERS; i++)
		live[i] = pq_shared->slots[i].pid;
	SpinLockRelease(&pq_shared->mutex);

	ids = palloc(sizeof(int64) * Max(n, 1));
	locks = palloc(sizeof(char *) * Max(n, 1));
	qlocks = palloc(sizeof(char *) * Max(n, 1));
	names = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		int			slot;
		int			pid;

		ids[i] = 0;
		names[i] = pq_get_text(i, 4);
		if (sscanf(names[i], "procq worker %d pid %d", &slot, &pid) == 2 &&
			slot >= 1 && slot <= PQ_MAX_WORKERS && live[slot - 1] == pid)
			continue;			/* its worker is alive */
		ids[i] = DatumGetInt64(pq_get_attr(i, 1, &isnull));
		locks[i] = pq_get_text(i, 2);
		qlocks[i] = pq_get_text(i, 3);
	}
	for (int i = 0; i < n; i++)
	{
		Datum		v[3];

		if (ids[i] == 0 ||
			(locks[i] && !pq_try_lock_key(locks[i], true)) ||
			(qlocks[i] && !pq_lock_queueing_key(qlocks[i], true)))
			continue;
		v[0] = Int64GetDatum(ids[i]);
		v[1] = CStringGetTextDatum("its procq worker died while running it");
		v[2] = CStringGetTextDatum(names[i]);
		recovered += pq_exec(PQ_RECOVER_STALLED, v, NULL, 1);
	}
	if (recovered > 0)
		ereport(LOG,
				(errmsg("procq worker %d put back %d job(s) of workers that died",
						my_slot + 1, recovered)));
	end_work();
}

/*
 * recover_stalled calls procq.recover_stalled() for jobs of external
 * workers whose lease ran out.
 */
static void
recover_stalled(void)
{
	begin_work("recovering stalled jobs");
	if (SPI_execute("SELECT procq.recover_stalled()", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "procq: recover_stalled failed");
	end_work();
}

/*
 * pq_worker_main is a procq worker: it claims its slot, recovers what the
 * slot's previous worker left running, and runs jobs until told to stop.
 */
void
pq_worker_main(Datum arg)
{
	sigjmp_buf	local_sigjmp_buf;
	MemoryContext jobcxt;
	volatile TimestampTz last_recover = 0;
	volatile bool installed_logged = false;

	my_slot = DatumGetInt32(arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	pqsignal(SIGINT, StatementCancelHandler);
	pqsignal(SIGQUIT, worker_quickdie);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(pq_database, NULL, 0);

	SpinLockAcquire(&pq_shared->mutex);
	if (pq_shared->slots[my_slot].pid != 0)
	{
		SpinLockRelease(&pq_shared->mutex);
		proc_exit(0);			/* another worker has this slot */
	}
	pq_shared->slots[my_slot].pid = MyProcPid;
	pq_shared->slots[my_slot].dboid = MyDatabaseId;
	pq_shared->slots[my_slot].latch = MyLatch;
	pq_shared->slots[my_slot].state = PQ_WORKER_STARTING;
	pq_shared->slots[my_slot].started_at = GetCurrentTimestamp();
	SpinLockRelease(&pq_shared->mutex);
	before_shmem_exit(release_slot, (Datum) 0);

	my_name = MemoryContextStrdup(TopMemoryContext,
								  psprintf("procq worker %d pid %d", my_slot + 1, MyProcPid));
	pgstat_report_appname(psprintf("procq worker %d", my_slot + 1));
	jobcxt = AllocSetContextCreate(TopMemoryContext, "procq job", ALLOCSET_DEFAULT_SIZES);
	open_running_file();

	/*
	 * An error outside a job's subtransaction (a deadlock while finishing, a
	 * job that a DBA changed under us) ends up here: report it, abort the
	 * transaction (its batch runs again) and go on after a pause, rather
	 * than exit and wait for the launcher.  A job that keeps doing this is
	 * caught by note_running like one that kills its worker.
	 */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		error_context_stack = NULL;
		HOLD_INTERRUPTS();
		disable_all_timeouts(false);
		QueryCancelPending = false;
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		MemoryContextSwitchTo(TopMemoryContext);
		FlushErrorState();
		MemoryContextReset(jobcxt);
		QueryCancelHoldoffCount = 1;
		RESUME_INTERRUPTS();
		set_state(PQ_WORKER_IDLE, 0, NULL);
		(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
	}
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
		}

		StartTransactionCommand();
		if (procq_installed())
		{
			CommitTransactionCommand();
			if (TimestampDifferenceExceeds(last_recover, GetCurrentTimestamp(),
										   PQ_RECOVER_INTERVAL_MS))
			{
				recover_orphans();
				recover_stalled();
				last_recover = GetCurrentTimestamp();
			}
			worked = run_sql_batch(jobcxt);
			if (pq_enable_shell)
				worked |= run_shell_job(jobcxt);
			MemoryContextReset(jobcxt);
			installed_logged = false;
		}
		else
		{
			CommitTransactionCommand();
			if (!installed_logged)
				ereport(LOG,
						(errmsg("procq worker %d waits: extension procq is not installed in database \"%s\"",
								my_slot + 1, pq_database)));
			installed_logged = true;
		}

		if (worked)
			continue;
		set_state(PQ_WORKER_IDLE, 0, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pq_poll_interval, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * handler_exists_for_me says whether task has a handler, and raises an
 * error when it belongs to a role whose privileges the current role does
 * not have: only its owner (or a role acting for it) may change it.
 */
static bool
handler_exists_for_me(text *task)
{
	Datum		v[1] = {PointerGetDatum(task)};
	bool		isnull;
	Oid			owner;

	if (pq_exec(PQ_HANDLER_OWNER, v, NULL, 1) == 0)
		return false;
	owner = DatumGetObjectId(pq_get_attr(0, 1, &isnull));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the handler of task \"%s\" belongs to role %s",
						text_to_cstring(task), GetUserNameFromId(owner, true)),
				 errhint("Only that role, or a role with its privileges, may change it.")));
	return true;
}

/*
 * procq.register_handler(task, kind, command, timeout) returns void
 *
 * Lets the background workers run jobs of task.  A sql handler's command
 * must be one statement; a shell handler is for superusers only.  A
 * handler registered by another role may only be replaced by a role that
 * has that role's privileges.
 */
Datum
procq_register_handler(PG_FUNCTION_ARGS)
{
	text	   *task;
	char	   *kind;
	text	   *command;
	Datum		v[5];
	char		n[5] = {' ', ' ', ' ', ' ', ' '};

	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", i == 0 ? "task" : i == 1 ? "kind" : "command")));
	task = PG_GETARG_TEXT_PP(0);
	kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	command = PG_GETARG_TEXT_PP(2);

	if (VARSIZE_ANY_EXHDR(task) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("task must not be empty")));
	if (strcmp(kind, "sql") != 0 && strcmp(kind, "shell") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("handler kind must be sql or shell, not \"%s\"", kind)));
	if (strcmp(kind, "shell") == 0 && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers can register shell handlers"),
				 errdetail("A shell handler runs programs as the server's operating system user.")));
	if (strcmp(kind, "sql") == 0)
	{
		List	   *stmts = pg_parse_query(text_to_cstring(command));

		if (list_length(stmts) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a sql handler's command must be exactly one statement"),
					 errdetail("It has %d.", list_length(stmts)),
					 errhint("Wrap several statements in a function and call it.")));
	}
	else
	{
		char		errbuf[256];
		char	  **argv = pq_shell_split(text_to_cstring(command), errbuf, sizeof(errbuf));

		if (argv == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid shell handler command: %s", errbuf)));
		free(argv);
	}
	if (!PG_ARGISNULL(3))
	{
		Interval   *timeout = PG_GETARG_INTERVAL_P(3);

		if (timeout->month != 0 || timeout->day != 0 || timeout->time <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timeout must be a positive interval of hours, minutes or seconds")));
	}

	pq_connect();
	(void) handler_exists_for_me(task);
	v[0] = PointerGetDatum(task);
	v[1] = CStringGetTextDatum(kind);
	v[2] = PointerGetDatum(command);
	v[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	n[3] = PG_ARGISNULL(3) ? 'n' : ' ';
	v[4] = ObjectIdGetDatum(GetUserId());
	pq_exec(PQ_HANDLER_UPSERT, v, n, 0);
	pq_finish();

	PG_RETURN_VOID();
}

/*
 * procq.unregister_handler(task) returns boolean
 *
 * Removes a task's handler; its jobs stay for external workers.
 */
Datum
procq_unregister_handler(PG_FUNCTION_ARGS)
{
	text	   *task;
	Datum		v[1];
	bool		removed = false;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("task must not be null")));
	task = PG_GETARG_TEXT_PP(0);

	pq_connect();
	v[0] = PointerGetDatum(task);
	if (handler_exists_for_me(task))
		removed = pq_exec(PQ_HANDLER_DELETE, v, NULL, 0) == 1;
	pq_finish();

	PG_RETURN_BOOL(removed);
}

/*
 * procq.worker_status() returns setof record
 *
 * One row per running worker, from shared memory: pid, name, state, the
 * job it runs and since when, how many jobs it has done, when it started.
 * No rows when procq is not in shared_preload_libraries.
 */
Datum
procq_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PQWorkerSlot slots[PQ_MAX_WORKERS];

	InitMaterializedSRF(fcinfo, 0);
	if (pq_shared == NULL)
		return (Datum) 0;

	SpinLockAcquire(&pq_shared->mutex);
	memcpy(slots, pq_shared->slots, sizeof(slots));
	SpinLockRelease(&pq_shared->mutex);

	for (int i = 0; i < PQ_MAX_WORKERS; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {0};
		PQWorkerSlot *slot = &slots[i];

		if (slot->pid == 0)
			continue;
		values[0] = Int32GetDatum(slot->pid);
		values[1] = CStringGetTextDatum(psprintf("procq worker %d", i + 1));
		values[2] = CStringGetTextDatum(pq_state_names[slot->state]);
		values[3] = Int64GetDatum(slot->job_id);
		nulls[3] = slot->job_id == 0;
		values[4] = CStringGetTextDatum(slot->task);
		nulls[4] = slot->job_id == 0;
		values[5] = TimestampTzGetDatum(slot->job_started_at);
		nulls[5] = slot->job_id == 0;
		values[6] = Int64GetDatum(slot->jobs_done);
		values[7] = TimestampTzGetDatum(slot->started_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
