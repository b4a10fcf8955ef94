/*-------------------------------------------------------------------------
 *
 * retention.h
 *	  Deleting old finished jobs: procq.purge and the workers' retention
 *	  pass (procq.retention), defined in retention.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_RETENTION_H
#define PROCQ_RETENTION_H

extern bool pq_retention_step(void);

#endif							/* PROCQ_RETENTION_H */
