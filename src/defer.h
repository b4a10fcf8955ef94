/*-------------------------------------------------------------------------
 *
 * defer.h
 *	  Inserting a job and its dependency rows.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_DEFER_H
#define PROCQ_DEFER_H

#include "postgres.h"

#include "jobs.h"

#include "utils/jsonb.h"
#include "utils/timestamp.h"

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
	PQRunAfter	run_after;		/* when it runs, as to its parents */
	int64		workflow_id;	/* the workflow to join, 0, or PQ_WORKFLOW_OF_BATCH */
	text	   *step_key;		/* its key in defer_workflow, or NULL */
} PQJobSpec;

/*
 * PQJobSpec.workflow_id of a step of defer_workflow that starts a new
 * workflow: the one of the batch's first job (issue 9).
 */
#define PQ_WORKFLOW_OF_BATCH (-1)

/*
 * A job of a batch (pq_defer_batch): its spec (spec->parents are existing
 * jobs), the earlier jobs of the same batch it depends on, by index, and
 * the id it got.
 */
typedef struct PQBatchJob
{
	PQJobSpec  *spec;
	int		   *batch_parents;	/* indexes of earlier jobs, any order */
	int			nbatch_parents;
	int64		id;				/* set by pq_defer_batch */
} PQBatchJob;

extern void pq_validate_spec(PQJobSpec *spec);
extern int64 pq_defer_job(PQJobSpec *spec);
extern void pq_defer_batch(PQBatchJob *jobs, int n, int *current);
extern bool pq_judge_new_parents(int64 child, const int64 *parents, int nparents);

#endif							/* PROCQ_DEFER_H */
