/*-------------------------------------------------------------------------
 *
 * events.h
 *	  The history of the jobs (procq.job_events), defined in events.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_EVENTS_H
#define PROCQ_EVENTS_H

#include "spi_exec.h"

/* The event of a doing job put back by recover_stalled or orphan recovery. */
#define PQ_EVENT_STALLED "stalled"

/*
 * The event of the jobs that defer, defer_jobs and defer_workflow insert:
 * only their inserts are recorded (not a restore's COPY, nor a DBA's INSERT).
 */
#define PQ_EVENT_DEFERRED "deferred"

extern int	pq_events_run_as(const char *event, PQStatement *stmt,
							 Datum *values, const char *nulls);

#endif							/* PROCQ_EVENTS_H */
