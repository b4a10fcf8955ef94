/*-------------------------------------------------------------------------
 *
 * notify.h
 *	  "A job became ready": NOTIFY procq, and waking the workers at commit.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_NOTIFY_H
#define PROCQ_NOTIFY_H

/* Channel that NOTIFY uses when a job becomes ready; payload: its queue. */
#define PQ_NOTIFY_CHANNEL "procq"

extern void pq_notify_init(void);
extern void pq_notify_ready(const char *queue);

#endif							/* PROCQ_NOTIFY_H */
