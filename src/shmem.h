/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  procq's shared memory: one slot per background worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_SHMEM_H
#define PROCQ_SHMEM_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* What a worker slot says a worker is doing. */
typedef enum PQWorkerState
{
	PQ_WORKER_STARTING,
	PQ_WORKER_IDLE,
	PQ_WORKER_SQL,
	PQ_WORKER_SHELL
} PQWorkerState;

/* What procq.cancel_job(..., abort => true) found a worker doing. */
typedef enum PQAbortResult
{
	PQ_ABORT_NOT_RUNNING,		/* no worker runs the job */
	PQ_ABORT_REQUESTED,			/* its worker was asked to stop it */
	PQ_ABORT_TOO_LATE			/* its worker is already ending it */
} PQAbortResult;

/* In a procq worker: its slot (0-based), else -1. */
extern int	pq_my_slot;

/* In a procq worker: its name as stored in jobs.worker, else NULL. */
extern char *pq_my_name;

extern void pq_shmem_init(void);

/* For any backend */
extern void pq_shmem_wake_workers(Oid dboid);
extern PQAbortResult pq_abort_running_job(int64 job_id);
extern bool pq_worker_runs_job(int64 job_id);
extern void pq_slot_read(int slot, pid_t *pid, TimestampTz *started_at);
extern void pq_live_worker_pids(pid_t *pids);

/* For the worker that holds the slot */
extern bool pq_slot_claim(int slot);
extern void pq_slot_release(void);
extern void pq_slot_set_state(PQWorkerState state, int64 job_id, const char *task);
extern void pq_slot_job_done(void);
extern bool pq_slot_abort_requested(int64 job_id);
extern bool pq_slot_settle_abort(int64 job_id);
extern void pq_slot_abort_signal(SIGNAL_ARGS);

#endif							/* PROCQ_SHMEM_H */
