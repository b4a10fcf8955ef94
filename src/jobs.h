/*-------------------------------------------------------------------------
 *
 * jobs.h
 *	  Looking up and locking single jobs of procq.jobs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_JOBS_H
#define PROCQ_JOBS_H

#include "postgres.h"

/* What pq_job_lookup reads of a job; strings are NULL for SQL NULL. */
typedef struct PQJobInfo
{
	char	   *status;
	char	   *lock;
	char	   *queueing_lock;
	char	   *queue;
	bool		ready;			/* todo and fetchable */
	Oid			deferred_by;	/* the role that deferred it */
} PQJobInfo;

/* When a job runs, as to its parents (procq.jobs.run_after, issue 9). */
typedef enum PQRunAfter
{
	PQ_RUN_AFTER_SUCCESS,		/* all succeeded; else it is cancelled */
	PQ_RUN_AFTER_COMPLETION,	/* all are final, however they ended */
	PQ_RUN_AFTER_FAILURE,		/* all are final, and one did not succeed */
	PQ_RUN_AFTER_INVALID
} PQRunAfter;

extern bool pq_schema_has_workflows(void);
extern PQRunAfter pq_run_after_from_text(text *value);
extern const char *pq_run_after_name(PQRunAfter run_after);
extern PQRunAfter pq_check_run_after(text *value, const char *what);
extern bool pq_job_lookup(int64 job_id, PQJobInfo *info);
extern void pq_job_not_found(int64 job_id) pg_attribute_noreturn();
extern char *pq_job_status(int64 job_id);
extern int	pq_lock_jobs_for_share(Datum ids);
extern bool pq_job_failed_parent(int64 job_id, int64 *parent, char **status);
extern bool pq_job_not_needed(int64 job_id);

#endif							/* PROCQ_JOBS_H */
