/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The launcher that keeps procq.workers background workers running.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_LAUNCHER_H
#define PROCQ_LAUNCHER_H

extern void pq_launcher_register(void);

#endif							/* PROCQ_LAUNCHER_H */
