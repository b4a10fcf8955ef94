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

#endif							/* PROCQ_WORKER_XACT_H */
