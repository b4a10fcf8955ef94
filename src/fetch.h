/*-------------------------------------------------------------------------
 *
 * fetch.h
 *	  Taking jobs: for procq.fetch_job and for the background workers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_FETCH_H
#define PROCQ_FETCH_H

#include "postgres.h"

/* A job as a background worker fetched it, with its handler. */
typedef struct PQFetchedJob
{
	int64		id;
	char	   *task;
	Datum		args;			/* jsonb, as the row holds it */
	Oid			deferred_by;
	char	   *command;
	int64		timeout_ms;		/* 0: none */
	Oid			registered_by;
} PQFetchedJob;

extern void pq_promote_due(bool notify);
extern bool pq_fetch_handled_job(const char *kind, const char *worker,
								 int lease_seconds, PQFetchedJob *job,
								 MemoryContext cxt);

#endif							/* PROCQ_FETCH_H */
