/*-------------------------------------------------------------------------
 *
 * stats.h
 *	  Per-queue counts of final jobs (for procq.queue_stats and
 *	  procq.metrics), kept by the bookkeeping triggers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_STATS_H
#define PROCQ_STATS_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "executor/tuptable.h"
#include "utils/hsearch.h"

/*
 * What one statement changed in the counts of final jobs, per queue; set
 * up by pq_final_counts_start, filled by pq_final_counts_change, written
 * by pq_final_counts_flush.
 */
typedef struct PQFinalCounts
{
	bool		enabled;		/* procq.queue_counts exists (procq 1.1) */
	Oid			relid;			/* procq.queue_counts */
	int			status_att;
	int			queue_att;
	Oid			final_oids[3];	/* enum values succeeded, failed, cancelled */
	HTAB	   *queues;			/* queue -> deltas, NULL while empty */
} PQFinalCounts;

extern void pq_final_counts_start(PQFinalCounts *counts, TupleDesc desc);
extern void pq_final_counts_change(PQFinalCounts *counts, TupleTableSlot *old,
								   TupleTableSlot *new);
extern bool pq_final_counts_pending(PQFinalCounts *counts);
extern void pq_final_counts_flush(PQFinalCounts *counts, bool may_fold);

#endif							/* PROCQ_STATS_H */
