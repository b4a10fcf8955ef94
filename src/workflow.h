/*-------------------------------------------------------------------------
 *
 * workflow.h
 *	  procq.defer_workflow's core: a whole DAG of jobs in one call, for the
 *	  SQL functions that defer workflows (defer_workflow, and
 *	  defer_workflow_once in ticks.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_WORKFLOW_H
#define PROCQ_WORKFLOW_H

#include "postgres.h"

#include "utils/jsonb.h"

extern int64 pq_defer_workflow(Jsonb *json, int64 workflow_id, int *nsteps,
							   char ***keys, int64 **job_ids);

#endif							/* PROCQ_WORKFLOW_H */
