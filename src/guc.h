/*-------------------------------------------------------------------------
 *
 * guc.h
 *	  procq's settings (procq.*), defined in guc.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_GUC_H
#define PROCQ_GUC_H

/* Most workers procq.workers may ask for (and slots in shared memory). */
#define PQ_MAX_WORKERS 32

/* Jobs and leases */
extern int	pq_lease_duration;
extern int	pq_retry_delay;
extern int	pq_retry_delay_max;

/* Background workers */
extern char *pq_database;
extern int	pq_workers;
extern int	pq_batch_size;
extern int	pq_poll_interval;
extern bool pq_enable_shell;
extern int	pq_shell_output_limit;
extern int	pq_retention;
extern int	pq_worker_lock_timeout;

/* History */
extern bool pq_record_events;

extern void pq_guc_init(void);

#endif							/* PROCQ_GUC_H */
