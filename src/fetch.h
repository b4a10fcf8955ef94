/*-------------------------------------------------------------------------
 *
 * fetch.h
 *	  Taking jobs: procq.fetch_job and fetch_jobs, and promoting due jobs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_FETCH_H
#define PROCQ_FETCH_H

#include "postgres.h"

extern void pq_promote_due(bool notify);

#endif							/* PROCQ_FETCH_H */
