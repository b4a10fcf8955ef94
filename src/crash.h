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

/*
 * How many times a worker may die while running the same SQL job before
 * the job is failed instead of run again.
 */
#define PQ_POISON_LIMIT 3

extern void pq_crash_open(int slot);
extern bool pq_crash_is_poison(int64 job_id, int *runs);
extern int	pq_crash_note_running(int64 job_id);
extern void pq_crash_clear(void);

#endif							/* PROCQ_CRASH_H */
