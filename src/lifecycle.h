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

extern void pq_worker_finish(int64 job_id, const char *status, Datum result,
							 bool result_null, const char *error);
extern double pq_retry_delay_seconds(int attempts);
extern void pq_check_finish_status(const char *status, bool has_result);
extern void pq_fail_for_good(int64 job_id, const char *error);
extern int	pq_recover_job(int64 job_id, const char *error, const char *worker);
extern int	pq_recover_stalled_jobs(void);

#endif							/* PROCQ_LIFECYCLE_H */
