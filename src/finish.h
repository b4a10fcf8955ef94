/*-------------------------------------------------------------------------
 *
 * finish.h
 *	  Ending many doing jobs at once (procq.finish_jobs).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_FINISH_H
#define PROCQ_FINISH_H

#include "postgres.h"

#include "lifecycle.h"

/* One job of a batch to finish, and what became of it. */
typedef struct PQFinishItem
{
	int64		id;
	const char *status;			/* succeeded, failed or cancelled */
	bool		has_result;
	Datum		result;			/* jsonb, when has_result */
	char	   *error;			/* NULL when none */
	PQAttempt	attempt;		/* the attempt it was fetched in, if given */
	/* set by pq_finish_batch: */
	const char *ended;			/* the status it ended in (todo: retried) */
	int64		holder;			/* job whose queueing_lock kept it failed, or 0 */
} PQFinishItem;

extern void pq_finish_batch(PQFinishItem *jobs, int n);

#endif							/* PROCQ_FINISH_H */
