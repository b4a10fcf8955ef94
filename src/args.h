/*-------------------------------------------------------------------------
 *
 * args.h
 *	  Checking SQL function arguments, and lists and arrays of job ids.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_ARGS_H
#define PROCQ_ARGS_H

#include "postgres.h"

#include "fmgr.h"

/* A list of job ids that grows as a walk finds them. */
typedef struct PQIdList
{
	int64	   *ids;
	int			n;
	int			cap;
} PQIdList;

extern void pq_require_arg(FunctionCallInfo fcinfo, int argno, const char *name);
extern void pq_check_name_length(text *value, const char *name);
extern void pq_idlist_add(PQIdList *list, int64 id);
extern Datum pq_int8_array(const int64 *ids, int n);
extern int64 *pq_sort_unique_ids(int64 *ids, int *n);

#endif							/* PROCQ_ARGS_H */
