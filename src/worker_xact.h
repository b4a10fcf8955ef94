/*-------------------------------------------------------------------------
 *
 * worker_xact.h
 *	  The transactions of a background worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_WORKER_XACT_H
#define PROCQ_WORKER_XACT_H

extern void pq_begin_xact(const char *activity);
extern void pq_end_xact(void);
extern void pq_begin_work(const char *activity);
extern void pq_end_work(void);

/*
 * Longest a worker that must stop waits for a lock while it puts back or
 * finishes the job it ran (pq_stopping_lock_timeout).
 */
#define PQ_STOPPING_LOCK_TIMEOUT_MS 1000

extern void pq_set_worker_lock_timeout(void);
extern void pq_lock_waits_begin(void);
extern void pq_lock_waits_end(void);
extern bool pq_is_lock_timeout(int sqlerrcode);
extern void pq_stopping_lock_timeout(void);

#endif							/* PROCQ_WORKER_XACT_H */
