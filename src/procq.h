/*-------------------------------------------------------------------------
 *
 * procq.h
 *	  Declarations shared by procq's source files.
 *
 * src/procq.c     module entry, settings, the internal statement executor
 * src/api.c       the SQL API: defer, fetch_job, finish_job, ...
 * src/workflow.c  defer_workflow: parsing and ordering a DAG of steps
 * src/deps.c      dependency and lock bookkeeping, and the triggers
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_H
#define PROCQ_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* Channel that NOTIFY uses when a job becomes ready; payload: its queue. */
#define PQ_NOTIFY_CHANNEL "procq"

/*
 * Every internal statement procq runs.  Each is prepared once per backend
 * and kept (see pq_exec); the SQL text lives in procq.c next to this list.
 */
typedef enum PQStmt
{
	PQ_LOCK_PARENTS,
	PQ_LOCK_QUEUE_BUSY,
	PQ_INSERT_JOB,
	PQ_INSERT_DEPS,
	PQ_QUEUEING_LOCK_HOLDER,
	PQ_PROMOTE_DUE,
	PQ_FETCH_ANY,
	PQ_FETCH_ONE_QUEUE,
	PQ_QUEUES_BY_READINESS,
	PQ_HANDLED_TASKS,
	PQ_FETCH_HANDLED,
	PQ_FAIL_FOR_GOOD,
	PQ_WORKER_FINISH,
	PQ_HANDLER_OWNER,
	PQ_HANDLER_UPSERT,
	PQ_HANDLER_DELETE,
	PQ_ORPHANS,
	PQ_ABORT_DOING,
	PQ_LOCK_JOB,
	PQ_FINISH,
	PQ_RETRY,
	PQ_CANCEL,
	PQ_HEARTBEAT,
	PQ_STALLED,
	PQ_RECOVER_STALLED,
	PQ_PARENT_RESULTS,
	PQ_JOB_EXISTS,
	PQ_CHILDREN_OF,
	PQ_LOCKS_OF,
	PQ_RELEASE_CHILDREN,
	PQ_CANCEL_CHILDREN,
	PQ_LOCK_PARENTS_OF,
	PQ_REVIVE_CANDIDATES,
	PQ_REVIVE,
	PQ_REBLAME,
	PQ_FAILED_PARENT,
	PQ_LOCK_HEADS,
	PQ_LOCK_FIRST_TODO,
	PQ_SET_LOCK_BLOCKED,
	PQ_JOB_FOR_UPDATE,
	PQ_COUNT_PENDING_PARENTS,
	PQ_ADJUST_PENDING,
	PQ_CANCEL_ORPHAN,
	PQ_NUM_STMTS
} PQStmt;

/* A job to insert: what procq.defer and each workflow step carry. */
typedef struct PQJobSpec
{
	text	   *task;
	Jsonb	   *args;
	text	   *queue;
	int32		priority;
	bool		has_scheduled_at;
	TimestampTz scheduled_at;
	int64	   *parents;		/* sorted, without duplicates */
	int			nparents;
	int32		max_attempts;
	text	   *lock;			/* NULL when none */
	text	   *queueing_lock;	/* NULL when none */
} PQJobSpec;

/* Settings (procq.c) */
extern int	pq_lease_duration;
extern int	pq_retry_delay;
extern int	pq_retry_delay_max;

/* worker.c */
extern void pq_worker_init(void);
extern void pq_request_wakeup(void);
extern bool pq_abort_running_job(int64 job_id);
extern bool pq_worker_runs_job(int64 job_id);

/* procq.c */
extern int	pq_exec(PQStmt stmt, Datum *values, const char *nulls, long count);
extern void pq_connect(void);
extern void pq_finish(void);
extern void pq_notify_ready(const char *queue);
extern Datum pq_get_attr(int row, int col, bool *isnull);
extern char *pq_get_text(int row, int col);
extern void pq_lock_key(const char *lock);
extern bool pq_try_lock_key(const char *lock, bool nowait);
extern bool pq_lock_queueing_key(const char *queueing_lock, bool nowait);

/* api.c */
extern int64 pq_defer_job(PQJobSpec *spec);
extern void pq_validate_spec(PQJobSpec *spec);
extern int64 *pq_sort_unique_ids(int64 *ids, int *n);

/* deps.c */
extern void pq_refresh_lock(const char *lock);

#endif							/* PROCQ_H */
