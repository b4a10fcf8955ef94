/*-------------------------------------------------------------------------
 *
 * crash.h
 *	  Counting the workers a SQL job killed, so that it cannot run forever.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_CRASH_H
#define PROCQ_CRASH_H

#include "postgres.h"

#include <signal.h>

/*
 * How many times a worker may die while running the same SQL job before
 * the job is failed instead of run again.
 */
#define PQ_POISON_LIMIT 3

/*
 * Set by the worker's SIGTERM handler when the postmaster or the launcher
 * stops the worker (a shutdown, a restart, procq.workers lowered): the job
 * in flight is interrupted, its worker did not die of it.
 */
extern volatile sig_atomic_t pq_clean_stop;

extern void pq_crash_open(int slot);
extern bool pq_crash_alone(void);
extern int	pq_crash_deaths(int64 job_id);
extern void pq_crash_note_batch(const int64 *ids, int n);
extern void pq_crash_batch_done(void);
extern void pq_crash_interrupted(void);
extern void pq_crash_batch_failed(void);
extern void pq_crash_quickdie(void);

#endif							/* PROCQ_CRASH_H */
