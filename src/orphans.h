/*-------------------------------------------------------------------------
 *
 * orphans.h
 *	  Putting back the shell jobs of background workers that died.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_ORPHANS_H
#define PROCQ_ORPHANS_H

extern void pq_recover_orphans(void);

#endif							/* PROCQ_ORPHANS_H */
