/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  procq's shared memory: one slot per background worker, with its pid
 *	  and latch, what it is doing (procq.worker_status shows it), and an
 *	  abort request that procq.cancel_job(..., abort => true) leaves for it.
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
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
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
} PQWorkerSlot;

/* procq's shared memory. */
typedef struct PQShared
{
	slock_t		mutex;			/* protects everything below */
	PQWorkerSlot slots[PQ_MAX_WORKERS];
} PQShared;

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
		SpinLockInit(&pq_shared->mutex);
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
	SpinLockAcquire(&pq_shared->mutex);
	for (int i = 0; i < PQ_MAX_WORKERS; i++)
		if (pq_shared->slots[i].pid != 0 && pq_shared->slots[i].latch &&
			pq_shared->slots[i].dboid == dboid)
			latches[n++] = pq_shared->slots[i].latch;
	SpinLockRelease(&pq_shared->mutex);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
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
 * pq_slot_read returns the pid of a slot's worker (0: free) and when it
 * started, for the launcher.
 */
void
pq_slot_read(int slot, pid_t *pid, TimestampTz *started_at)
{
	SpinLockAcquire(&pq_shared->mutex);
	*pid = pq_shared->slots[slot].pid;
	*started_at = pq_shared->slots[slot].started_at;
	SpinLockRelease(&pq_shared->mutex);
}

/*
 * pq_live_worker_pids copies the pid of every slot (0: free) into pids,
 * which has room for PQ_MAX_WORKERS.
 */
void
pq_live_worker_pids(pid_t *pids)
{
	SpinLockAcquire(&pq_shared->mutex);
	for (int i = 0; i < PQ_MAX_WORKERS; i++)
		pids[i] = pq_shared->slots[i].pid;
	SpinLockRelease(&pq_shared->mutex);
}

/*
 * pq_slot_claim makes the calling worker the holder of slot, and names it
 * "procq worker <slot+1> pid <pid>".  Returns false when another worker
 * holds it.
 */
bool
pq_slot_claim(int slot)
{
	SpinLockAcquire(&pq_shared->mutex);
	if (pq_shared->slots[slot].pid != 0)
	{
		SpinLockRelease(&pq_shared->mutex);
		return false;
	}
	pq_shared->slots[slot].pid = MyProcPid;
	pq_shared->slots[slot].dboid = MyDatabaseId;
	pq_shared->slots[slot].latch = MyLatch;
	pq_shared->slots[slot].state = PQ_WORKER_STARTING;
	pq_shared->slots[slot].started_at = GetCurrentTimestamp();
	SpinLockRelease(&pq_shared->mutex);

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
	SpinLockAcquire(&pq_shared->mutex);
	memset(&pq_shared->slots[pq_my_slot], 0, sizeof(PQWorkerSlot));
	SpinLockRelease(&pq_shared->mutex);
}

/*
 * pq_slot_set_state records in the worker's slot what it is doing, and
 * shows it in pg_stat_activity ("job 123 (send_email)").
 */
void
pq_slot_set_state(PQWorkerState state, int64 job_id, const char *task)
{
	PQWorkerSlot *slot = &pq_shared->slots[pq_my_slot];

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
 * pq_slot_job_done counts a finished job in the worker's slot.
 */
void
pq_slot_job_done(void)
{
	SpinLockAcquire(&pq_shared->mutex);
	pq_shared->slots[pq_my_slot].jobs_done++;
	pq_shared->slots[pq_my_slot].job_id = 0;
	SpinLockRelease(&pq_shared->mutex);
}

/*
 * pq_slot_abort_requested says whether procq.cancel_job(job_id, abort =>
 * true) asked this worker to stop the job.
 */
bool
pq_slot_abort_requested(int64 job_id)
{
	bool		requested;

	SpinLockAcquire(&pq_shared->mutex);
	requested = pq_shared->slots[pq_my_slot].abort_job_id == job_id;
	SpinLockRelease(&pq_shared->mutex);
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
