/*-------------------------------------------------------------------------
 *
 * lifecycle.h
 *	  Ending, retrying, cancelling and recovering jobs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_LIFECYCLE_H
#define PROCQ_LIFECYCLE_H

#include "postgres.h"

#include "fmgr.h"

/* The attempt a caller says it runs a job in (fencing), if it said. */
typedef struct PQAttempt
{
	bool		given;
	int32		value;
} PQAttempt;

extern void pq_worker_finish(int64 job_id, const char *status, Datum result,
							 bool result_null, const char *error);
extern double pq_retry_delay_seconds(int attempts);
/* What a caller wanted to do with a job that does not run in its attempt. */
typedef enum PQRunningAct
{
	PQ_ACT_FINISH,				/* finish_job, finish_jobs */
	PQ_ACT_HEARTBEAT,			/* heartbeat */
	PQ_ACT_RELEASE				/* release_job */
} PQRunningAct;

extern PQAttempt pq_get_attempt(FunctionCallInfo fcinfo, int argno);
extern bool pq_job_runs_in(const char *status, int32 attempts,
						   const PQAttempt *attempt);
extern void pq_refuse_not_running(int64 job_id, const char *status,
								  int32 attempts, const char *error,
								  const PQAttempt *attempt, PQRunningAct act,
								  bool batch) pg_attribute_noreturn();
extern void pq_check_finish_status(const char *status, bool has_result);
extern void pq_fail_for_good(int64 job_id, const char *error);
extern int	pq_recover_job(int64 job_id, const char *error, const char *worker);
extern int	pq_recover_stalled_jobs(void);

#endif							/* PROCQ_LIFECYCLE_H */
