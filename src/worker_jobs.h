/*-------------------------------------------------------------------------
 *
 * worker_jobs.h
 *	  The jobs of a background worker: claimed as a batch in one statement,
 *	  their outcomes recorded in one statement.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_WORKER_JOBS_H
#define PROCQ_WORKER_JOBS_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* A job a background worker claimed, with its handler and its outcome. */
typedef struct PQWorkerJob
{
	int64		id;
	char	   *task;
	Datum		args;			/* jsonb, detoasted: usable after the claim */
	Oid			deferred_by;
	char	   *command;
	int64		timeout_ms;		/* 0: none */
	Oid			registered_by;
	TimestampTz registered_at;	/* the handler's version */
	int32		attempts;		/* counting this one */
	int32		max_attempts;
	int32		priority;
	char	   *lock;			/* NULL: none */
	char	   *queueing_lock;	/* NULL: none */

	/* The outcome, filled in by the runner; status NULL: none (yet). */
	const char *status;			/* succeeded, failed or cancelled */
	bool		for_good;		/* failed without a retry */
	bool		has_result;
	Datum		result;			/* jsonb, when has_result */
	char	   *error;			/* NULL: none */
} PQWorkerJob;

#include "utils/elog.h"

extern char *pq_error_text(ErrorData *edata);
extern int	pq_claim_jobs(const char *kind, int n, int lease_seconds,
						  PQWorkerJob **jobs, MemoryContext cxt);
extern int	pq_record_outcomes(PQWorkerJob *jobs, int n);
extern bool pq_put_back_uncounted(int64 job_id, int32 attempts,
								  const char *lock, const char *queueing_lock);

#endif							/* PROCQ_WORKER_JOBS_H */
