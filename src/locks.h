/*-------------------------------------------------------------------------
 *
 * locks.h
 *	  Lock queues (jobs sharing a lock value), queueing locks, and the
 *	  procq's own locks (not advisory locks) that serialize changes to them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_LOCKS_H
#define PROCQ_LOCKS_H

#include "postgres.h"

#include "nodes/pg_list.h"

extern void pq_lock_key(const char *lock);
extern bool pq_try_lock_key(const char *lock, bool nowait);
extern bool pq_lock_queueing_key(const char *queueing_lock, bool nowait);
extern void pq_lock_dependency_graph(void);
extern bool pq_lock_queue_busy(text *lock);
extern int64 pq_queueing_lock_holder(const char *queueing_lock);
extern List *pq_lock_queues_of(Datum ids);
extern void pq_refresh_lock(const char *lock);
extern void pq_refresh_locks(List *locks);

#endif							/* PROCQ_LOCKS_H */
