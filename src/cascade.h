/*-------------------------------------------------------------------------
 *
 * cascade.h
 *	  What a job's end means for its descendants: graph walks.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_CASCADE_H
#define PROCQ_CASCADE_H

#include "postgres.h"

#include "args.h"

extern void pq_release_children(int64 parent);
extern void pq_release_children_of(PQIdList *parents);
extern PQIdList pq_parents_with_children(PQIdList *ids);
extern void pq_cancel_descendants(int64 root, const char *first, const char *deeper);
extern void pq_revive_descendants(int64 root);
extern void pq_cancel_not_needed(PQIdList *ids);
extern void pq_parents_reopened(PQIdList *parents);

/*
 * The error of a 'failure' job cancelled because all its parents succeeded.
 * The view procq.workflows names the same text (its skipped column).
 */
#define PQ_ALL_SUCCEEDED_ERROR "all its parents succeeded"


#endif							/* PROCQ_CASCADE_H */
