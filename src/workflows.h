/*-------------------------------------------------------------------------
 *
 * workflows.h
 *	  Workflows as a whole (issue 9): which workflow a new job joins, and
 *	  the SQL functions over a workflow (cancel_workflow, workflow_dot,
 *	  parents).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_WORKFLOWS_H
#define PROCQ_WORKFLOWS_H

#include "postgres.h"

extern int64 pq_workflow_arg(int64 workflow_id);
extern void pq_check_workflow(int64 workflow_id);
extern int64 pq_parents_workflow(Datum parents_array);

#endif							/* PROCQ_WORKFLOWS_H */
