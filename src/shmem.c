/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  procq's shared memory: one slot per background worker, with its pid
 *	  and latch, what it is doing (procq.worker_status shows it), and an
 *	  abort request that procq.cancel_job(..., abort => true) leaves for it.
 *
 * Aborting a running job.  cancel_job records in the slot which job it
 * aborts, and signals the worker, while it holds the slot lock and has
 * seen that job in the slot: the pid cannot belong to another process by
 * then, and the request names its job.  The worker's SIGINT handler
 * (pq_slot_abort_signal) only cancels the statement running when the
 * request names the job in its slot, so a signal that arrives late never
 * hits the next job.  The request stays in the slot until the job ends,
 * and the worker checks it at every step (pq_slot_abort_requested), so an
 * abort that lands between two statements of a job, or after the last one,
 * is not lost.  Once the worker has decided how the job ends, it says so
 * (pq_slot_settle_abort): from then on cancel_job answers false ("too
 * late") instead of true, so that true always means the job ends
 * cancelled.
 *
 * Global state: pq_shared (NULL unless procq is preloaded), and in a
 * worker process pq_my_slot and pq_my_name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(procq_worker_status);

static const char *const state_names[] = {"starting", "idle", "running sql", "running shell"};

/* One worker's slot; pid 0 means free. */
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
	bool		abort_settled;	/* the job's outcome is decided: too late */
} PQWorkerSlot;

/*
 * procq's shared memory.  The slot lock is an LWLock rather than a
 * spinlock: cancel_job signals a worker while holding it.
 */
typedef struct PQShared
{
	LWLock	   *lock;			/* protects the slots */
	PQWorkerSlot slots[PQ_MAX_WORKERS];
} PQShared;

/* Name of the LWLock tranche of the slot lock. */
#define PQ_LWLOCK_TRANCHE "procq"

/* Pointer to procq's shared memory; NULL unless procq is preloaded. */
static PQShared *pq_shared = NULL;

int			pq_my_slot = -1;
char	   *pq_my_name = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * shmem_request asks the postmaster for procq's shared memory.
 */
static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PQShared)));
	RequestNamedLWLockTranche(PQ_LWLOCK_TRANCHE, 1);
}

/*
 * shmem_startup finds or creates procq's shared memory; after a crash the
 * postmaster creates it anew, with every slot free.
 */
static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pq_shared = ShmemInitStruct("procq", sizeof(PQShared), &found);
	if (!found)
	{
		memset(pq_shared, 0, sizeof(PQShared));
		pq_shared->lock = &(GetNamedLWLockTranche(PQ_LWLOCK_TRANCHE))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * pq_shmem_init installs the hooks that set up shared memory; called from
 * _PG_init while preloading.
 */
void
pq_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/*
 * pq_shmem_wake_workers sets the latch of every worker connected to
 * database dboid.
 */
void
pq_shmem_wake_workers(Oid dboid)
{
	Latch	   *latches[PQ_MAX_WORKERS];
	int			n = 0;

	if (pq_shared == NULL)
		return;
	LWLockAcquire(pq_shared->lock, LW_SHARED);
	for (int i = 0; i < PQ_MAX_WORKERS; i++)
		if (pq_shared->slots[i].pid != 0 && pq_shared->slots[i].latch &&
			pq_shared->slots[i].dboid == dboid)
			latches[n++] = pq_shared->slots[i].latch;
	LWLockRelease(pq_shared->lock);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

/*
 * pq_abort_running_job asks the background worker running job_id, if
 * any, to stop it: a SQL job's statement is cancelled (SIGINT), a shell
 * job's process group killed (the worker polls for the request; its latch
 * is set).  The worker then ends the job as cancelled.  The request and
 * the signal are made under the slot lock, once the slot is seen to run
 * job_id (see the file header).  Returns PQ_ABORT_REQUESTED then (also
 * when the job's abort was already requested), PQ_ABORT_TOO_LATE when its
 * worker has already decided how the job ends, PQ_ABORT_NOT_RUNNING when
 * no worker runs it.
 */
PQAbortResult
pq_abort_running_job(int64 job_id)
{
	PQAbortResult result = PQ_ABORT_NOT_RUNNING;

	/* Job ids are positive; 0 in a slot means no job. */
	if (pq_shared == NULL || job_id <= 0)
		return PQ_ABORT_NOT_RUNNING;

	LWLockAcquire(pq_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < PQ_MAX_WORKERS; i++)
	{
		PQWorkerSlot *slot = &pq_shared->slots[i];

		if (slot->pid == 0 || slot->dboid != MyDatabaseId || slot->job_id != job_id)
			continue;
		if (slot->abort_settled && slot->abort_job_id != job_id)
		{
			result = PQ_ABORT_TOO_LATE;
			break;
		}
		slot->abort_job_id = job_id;
		if (slot->latch)
			SetLatch(slot->latch);
		if (slot->state == PQ_WORKER_SQL)
			(void) kill(slot->pid, SIGINT);
		result = PQ_ABORT_REQUESTED;
		break;
	}
	LWLockRelease(pq_shared->lock);
	return result;
}

/*
 * pq_slot_abort_signal is a worker's SIGINT handler.  SIGINT cancels the
 * statement running (as PostgreSQL's own handler does) in two cases only:
 * the worker sent it to itself because a handler's statement_timeout or
 * lock_timeout ran out (timeout.c marks which before it signals), or
 * cancel_job sent it and the slot's abort request names the job the slot
 * runs.  A signal from cancel_job that comes late, after its job ended,
 * and a pg_cancel_backend() from anyone else, change nothing (use
 * procq.cancel_job).  It reads the slot without the lock (a signal handler
 * must not wait), which is enough: the request is written before the
 * signal is sent, and the job id only by this process.
 */
void
pq_slot_abort_signal(SIGNAL_ARGS)
{
	int			save_errno = errno;
	bool		cancel = false;

	if (get_timeout_indicator(STATEMENT_TIMEOUT, false) ||
		get_timeout_indicator(LOCK_TIMEOUT, false))
		cancel = true;
	else if (pq_shared != NULL && pq_my_slot >= 0)
	{
		volatile PQWorkerSlot *slot = &pq_shared->slots[pq_my_slot];
		int64		abort_job_id = slot->abort_job_id;

		cancel = abort_job_id != 0 && abort_job_id == slot->job_id;
	}
	if (cancel)
	{
		InterruptPending = true;
		QueryCancelPending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * pq_worker_runs_job says whether a background worker is running job_id
 * right now.
 */
bool
pq_worker_runs_job(int64 job_id)
{
	bool		running = false;

	if (pq_shared == NULL || job_id <= 0)
		return false;
	LWLockAcquire(pq_shared->lock, LW_SHARED);
	for (int i = 0; i < PQ_MAX_WORKERS; i++)
		if (pq_shared->slots[i].pid != 0 &&
			pq_shared->slots[i].dboid == MyDatabaseId &&
			pq_shared->slots[i].job_id == job_id)
			running = true;
	LWLockRelease(pq_shared->lock);
	return running;
}

/*
 * pq_slot_read returns the pid of a slot's worker (0: free) and when it
 * started, for the launcher.
 */
void
pq_slot_read(int slot, pid_t *pid, TimestampTz *started_at)
{
	LWLockAcquire(pq_shared->lock, LW_SHARED);
	*pid = pq_shared->slots[slot].pid;
	*started_at = pq_shared->slots[slot].started_at;
	LWLockRelease(pq_shared->lock);
}

/*
 * pq_live_worker_pids copies the pid of every slot (0: free) into pids,
 * which has room for PQ_MAX_WORKERS.
 */
void
pq_live_worker_pids(pid_t *pids)
{
	LWLockAcquire(pq_shared->lock, LW_SHARED);
	for (int i = 0; i < PQ_MAX_WORKERS; i++)
		pids[i] = pq_shared->slots[i].pid;
	LWLockRelease(pq_shared->lock);
}

/*
 * pq_slot_claim makes the calling worker the holder of slot, and names it
 * "procq worker <slot+1> pid <pid>".  Returns false when another worker
 * holds it.
 */
bool
pq_slot_claim(int slot)
{
	LWLockAcquire(pq_shared->lock, LW_EXCLUSIVE);
	if (pq_shared->slots[slot].pid != 0)
	{
		LWLockRelease(pq_shared->lock);
		return false;
	}
	pq_shared->slots[slot].pid = MyProcPid;
	pq_shared->slots[slot].dboid = MyDatabaseId;
	pq_shared->slots[slot].latch = MyLatch;
	pq_shared->slots[slot].state = PQ_WORKER_STARTING;
	pq_shared->slots[slot].started_at = GetCurrentTimestamp();
	LWLockRelease(pq_shared->lock);

	pq_my_slot = slot;
	pq_my_name = MemoryContextStrdup(TopMemoryContext,
									 psprintf("procq worker %d pid %d", slot + 1, MyProcPid));
	return true;
}

/*
 * pq_slot_release frees the calling worker's slot.
 */
void
pq_slot_release(void)
{
	LWLockAcquire(pq_shared->lock, LW_EXCLUSIVE);
	memset(&pq_shared->slots[pq_my_slot], 0, sizeof(PQWorkerSlot));
	LWLockRelease(pq_shared->lock);
}

/*
 * pq_slot_set_state records in the worker's slot what it is doing, and
 * shows it in pg_stat_activity ("job 123 (send_email)").  A job's abort
 * request, and whether its outcome was settled, go with it.
 */
void
pq_slot_set_state(PQWorkerState state, int64 job_id, const char *task)
{
	PQWorkerSlot *slot = &pq_shared->slots[pq_my_slot];

	LWLockAcquire(pq_shared->lock, LW_EXCLUSIVE);
	/* An abort request is for the job that was running, not a later one. */
	if (slot->job_id != job_id)
	{
		slot->abort_job_id = 0;
		slot->abort_settled = false;
	}
	slot->state = state;
	slot->job_id = job_id;
	strlcpy(slot->task, task ? task : "", NAMEDATALEN);
	slot->job_started_at = job_id ? GetCurrentTimestamp() : 0;
	LWLockRelease(pq_shared->lock);

	if (job_id != 0)
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("job %lld (%s)", (long long) job_id, task));
	else
		pgstat_report_activity(STATE_IDLE, "waiting for jobs");
}

/*
 * pq_slot_job_done counts a finished job in the worker's slot, which no
 * longer runs it: its abort request goes too.
 */
void
pq_slot_job_done(void)
{
	PQWorkerSlot *slot = &pq_shared->slots[pq_my_slot];

	LWLockAcquire(pq_shared->lock, LW_EXCLUSIVE);
	slot->jobs_done++;
	slot->job_id = 0;
	slot->abort_job_id = 0;
	slot->abort_settled = false;
	LWLockRelease(pq_shared->lock);
}

/*
 * pq_slot_abort_requested says whether procq.cancel_job(job_id, abort =>
 * true) asked this worker to stop the job.  The worker asks at each step
 * of a job: the request stays until the job ends.
 */
bool
pq_slot_abort_requested(int64 job_id)
{
	bool		requested;

	LWLockAcquire(pq_shared->lock, LW_SHARED);
	requested = pq_shared->slots[pq_my_slot].abort_job_id == job_id;
	LWLockRelease(pq_shared->lock);
	return requested;
}

/*
 * pq_slot_settle_abort is where the worker decides how job_id ends: it
 * returns whether the job was asked to stop (it must then end cancelled),
 * and from then on cancel_job no longer takes an abort for it (it returns
 * false: too late).  The worker calls it once the job's work is over
 * (handler statement or program ended), before it records the outcome.
 */
bool
pq_slot_settle_abort(int64 job_id)
{
	PQWorkerSlot *slot = &pq_shared->slots[pq_my_slot];
	bool		requested;

	LWLockAcquire(pq_shared->lock, LW_EXCLUSIVE);
	Assert(slot->job_id == job_id);
	slot->abort_settled = true;
	requested = slot->abort_job_id == job_id;
	LWLockRelease(pq_shared->lock);
	return requested;
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

	LWLockAcquire(pq_shared->lock, LW_SHARED);
	memcpy(slots, pq_shared->slots, sizeof(slots));
	LWLockRelease(pq_shared->lock);

	for (int i = 0; i < PQ_MAX_WORKERS; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {0};
		PQWorkerSlot *slot = &slots[i];

		if (slot->pid == 0)
			continue;
		values[0] = Int32GetDatum(slot->pid);
		values[1] = CStringGetTextDatum(psprintf("procq worker %d", i + 1));
		values[2] = CStringGetTextDatum(state_names[slot->state]);
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
